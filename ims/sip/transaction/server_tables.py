"""Server transaction state tables: RFC 3261 §17.2, figures 7 and 8, as data.

Figure 7, INVITE server transaction (§17.2.1), as updated by RFC 6026 §7.1 (a 2xx from the TU
moves to "Accepted" instead of Terminated, so INVITE retransmissions are absorbed rather than
seen as new requests, and the TU can send 2xx retransmissions or further 2xx through it):

* Proceeding: entered when an INVITE arrives ("pass INV to TU"); a 100 (Trying) is sent unless
  the TU answers within 200 ms (our TRYING timer, configurable).  INVITE retransmission: the most
  recent provisional response is resent.  1xx from TU: sent.  2xx from TU: sent, Accepted (L set;
  2xx retransmission stays the TU's job, §13.3.1.4).  300-699 from TU: sent, Completed (G on
  UDP, H set).  Transport error: inform TU, Terminated.
* Accepted (RFC 6026): INVITE retransmission: absorbed.  2xx from TU: sent.  ACK: to the TU.
  Transport error: inform TU (stays).  Timer L (64*T1): Terminated.
* Completed: INVITE retransmission: final response resent.  Timer G fires: response resent,
  G = min(2G, T2).  Timer H fires: inform TU (no ACK), Terminated.  ACK: Confirmed (I set), the
  ACK is not passed up.  Transport error: inform TU, Terminated.
* Confirmed: ACK retransmissions absorbed (§17.2.1).  Timer I (T4 UDP, 0 reliable): Terminated.

Figure 8, non-INVITE server transaction (§17.2.2):

* Trying: request retransmissions are discarded (§17.2.2).  1xx from TU: sent, Proceeding.
  200-699 from TU: sent, Completed (J set).
* Proceeding: request retransmission: last provisional resent.  1xx from TU: sent.  200-699 from
  TU: sent, Completed.  Transport error: inform TU, Terminated.
* Completed: request retransmission: final response resent.  Timer J (64*T1 UDP, 0 reliable):
  Terminated.  Transport error: inform TU, Terminated.  Further final responses from the TU are
  discarded (§17.2.2 "MUST be discarded while in the Completed state").

A response from the TU that the figure does not allow (a second final response to an INVITE)
raises :class:`~.machine.TransactionProtocolError`: that is a TU bug and surfaces as one.
"""

from __future__ import annotations

from enum import Enum, auto

from .machine import Action as A
from .machine import MachineSpec
from .timers import TimerName


class InviteServerState(Enum):
    PROCEEDING = auto()
    ACCEPTED = auto()  # RFC 6026
    COMPLETED = auto()
    CONFIRMED = auto()
    TERMINATED = auto()


class InviteServerInput(Enum):
    REQUEST = auto()  # INVITE retransmission received
    ACK = auto()  # ACK (to our non-2xx) received
    TU_PROVISIONAL = auto()
    TU_SUCCESS = auto()
    TU_FAILURE = auto()  # 300-699 from the TU
    TIMER_TRYING = auto()
    TIMER_G = auto()
    TIMER_H = auto()
    TIMER_I = auto()
    TIMER_L = auto()
    TRANSPORT_ERROR = auto()


class NonInviteServerState(Enum):
    TRYING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    TERMINATED = auto()


class NonInviteServerInput(Enum):
    REQUEST = auto()  # request retransmission received
    TU_PROVISIONAL = auto()
    TU_FINAL = auto()  # 200-699 from the TU
    TIMER_J = auto()
    TRANSPORT_ERROR = auto()


_S, _I = InviteServerState, InviteServerInput

INVITE_SERVER = MachineSpec(
    name="INVITE server transaction",
    figure="RFC 3261 figure 7 (§17.2.1) + RFC 6026 §7.1",
    states=InviteServerState,
    inputs=InviteServerInput,
    initial_state=_S.PROCEEDING,
    initial_actions=(A.START_TRYING,),
    terminated=_S.TERMINATED,
    table={
        (_S.PROCEEDING, _I.REQUEST): ((A.RESEND_RESPONSE,), _S.PROCEEDING),
        (_S.PROCEEDING, _I.TIMER_TRYING): ((A.SEND_TRYING,), _S.PROCEEDING),
        (_S.PROCEEDING, _I.TU_PROVISIONAL): ((A.STOP_TRYING, A.SEND_RESPONSE), _S.PROCEEDING),
        (_S.PROCEEDING, _I.TU_SUCCESS): ((A.SEND_RESPONSE, A.START_L), _S.ACCEPTED),
        (_S.PROCEEDING, _I.TU_FAILURE): (
            (A.SEND_RESPONSE, A.START_G, A.START_H),
            _S.COMPLETED,
        ),
        (_S.PROCEEDING, _I.TRANSPORT_ERROR): ((A.INFORM_TRANSPORT_ERROR,), _S.TERMINATED),
        (_S.ACCEPTED, _I.REQUEST): ((), _S.ACCEPTED),  # absorbed, RFC 6026 §7.1
        (_S.ACCEPTED, _I.TU_SUCCESS): ((A.SEND_RESPONSE,), _S.ACCEPTED),
        (_S.ACCEPTED, _I.ACK): ((A.PASS_ACK,), _S.ACCEPTED),
        (_S.ACCEPTED, _I.TRANSPORT_ERROR): ((A.INFORM_TRANSPORT_ERROR,), _S.ACCEPTED),
        (_S.ACCEPTED, _I.TIMER_L): ((), _S.TERMINATED),
        (_S.COMPLETED, _I.REQUEST): ((A.RESEND_RESPONSE,), _S.COMPLETED),
        (_S.COMPLETED, _I.TIMER_G): ((A.RESEND_RESPONSE, A.BACKOFF_G), _S.COMPLETED),
        (_S.COMPLETED, _I.TIMER_H): ((A.INFORM_TIMEOUT,), _S.TERMINATED),
        (_S.COMPLETED, _I.ACK): ((A.START_I,), _S.CONFIRMED),
        (_S.COMPLETED, _I.TRANSPORT_ERROR): ((A.INFORM_TRANSPORT_ERROR,), _S.TERMINATED),
        (_S.CONFIRMED, _I.ACK): ((), _S.CONFIRMED),  # absorbed, §17.2.1
        (_S.CONFIRMED, _I.TIMER_I): ((), _S.TERMINATED),
    },
    live_timers={
        _S.PROCEEDING: frozenset({TimerName.TRYING}),
        _S.ACCEPTED: frozenset({TimerName.L}),
        _S.COMPLETED: frozenset({TimerName.G, TimerName.H}),
        _S.CONFIRMED: frozenset({TimerName.I}),
        _S.TERMINATED: frozenset(),
    },
    timer_inputs={
        TimerName.TRYING: _I.TIMER_TRYING,
        TimerName.G: _I.TIMER_G,
        TimerName.H: _I.TIMER_H,
        TimerName.I: _I.TIMER_I,
        TimerName.L: _I.TIMER_L,
    },
)

_N, _J = NonInviteServerState, NonInviteServerInput

NON_INVITE_SERVER = MachineSpec(
    name="non-INVITE server transaction",
    figure="RFC 3261 figure 8 (§17.2.2)",
    states=NonInviteServerState,
    inputs=NonInviteServerInput,
    initial_state=_N.TRYING,
    initial_actions=(),
    terminated=_N.TERMINATED,
    table={
        (_N.TRYING, _J.REQUEST): ((), _N.TRYING),  # discarded, §17.2.2
        (_N.TRYING, _J.TU_PROVISIONAL): ((A.SEND_RESPONSE,), _N.PROCEEDING),
        (_N.TRYING, _J.TU_FINAL): ((A.SEND_RESPONSE, A.START_J), _N.COMPLETED),
        (_N.PROCEEDING, _J.REQUEST): ((A.RESEND_RESPONSE,), _N.PROCEEDING),
        (_N.PROCEEDING, _J.TU_PROVISIONAL): ((A.SEND_RESPONSE,), _N.PROCEEDING),
        (_N.PROCEEDING, _J.TU_FINAL): ((A.SEND_RESPONSE, A.START_J), _N.COMPLETED),
        (_N.PROCEEDING, _J.TRANSPORT_ERROR): ((A.INFORM_TRANSPORT_ERROR,), _N.TERMINATED),
        (_N.COMPLETED, _J.REQUEST): ((A.RESEND_RESPONSE,), _N.COMPLETED),
        (_N.COMPLETED, _J.TU_FINAL): ((), _N.COMPLETED),  # discarded, §17.2.2
        (_N.COMPLETED, _J.TIMER_J): ((), _N.TERMINATED),
        (_N.COMPLETED, _J.TRANSPORT_ERROR): ((A.INFORM_TRANSPORT_ERROR,), _N.TERMINATED),
    },
    live_timers={
        _N.TRYING: frozenset(),
        _N.PROCEEDING: frozenset(),
        _N.COMPLETED: frozenset({TimerName.J}),
        _N.TERMINATED: frozenset(),
    },
    timer_inputs={TimerName.J: _J.TIMER_J},
)
