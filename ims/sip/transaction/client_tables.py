"""Client transaction state tables: RFC 3261 §17.1, figures 5 and 6, as data.

Figure 5, INVITE client transaction (§17.1.1), as updated by RFC 6026 §7.2 (the "Accepted"
state: a 2xx no longer terminates the transaction, so 2xx retransmissions and 2xx from other
forks still match it and reach the TU, which ACKs each; Timer M = 64*T1 ends it):

* Calling: entered by "INVITE from TU / INVITE sent", Timer A (UDP only) and Timer B set.
  Timer A fires: reset A (doubled), INVITE resent.  Timer B fires: inform TU, Terminated.
  1xx: to TU, Proceeding.  2xx: to TU, Accepted (M set).  300-699: ACK sent, to TU, Completed
  (D set).  Transport error: inform TU, Terminated.
* Proceeding: no retransmission (A and B stop, §17.1.1.2).  1xx: to TU.  2xx: to TU,
  Accepted.  300-699: ACK sent, to TU, Completed.
* Accepted (RFC 6026): 2xx: to TU.  Timer M: Terminated.
* Completed: 300-699 retransmission: ACK resent, not passed up.  Transport error: inform TU,
  Terminated.  Timer D (> 32 s UDP, 0 reliable): Terminated.
* A 2xx is never ACKed by the transaction: the ACK to a 2xx is the TU's (§13.2.2.4, §17.1.1.3).
  Like 1xx in Completed, a 1xx or 300-699 in Accepted has no arrow (RFC 6026) and is dropped.

Figure 6, non-INVITE client transaction (§17.1.2):

* Trying: entered by "Request from TU / request sent", Timer E (UDP only) and Timer F set.
  Timer E fires: request resent, E = min(2E, T2).  Timer F or transport error: inform TU,
  Terminated.  1xx: to TU, Proceeding.  200-699: to TU, Completed (K set).
* Proceeding: Timer E fires: request resent, E = T2.  1xx: to TU.  Timer F or transport error:
  inform TU, Terminated.  200-699: to TU, Completed.
* Completed: Timer K (T4 UDP, 0 reliable): Terminated.  Response retransmissions are absorbed
  (§17.1.2.2: "the Completed state exists to buffer any additional response retransmissions").

Anything else (a 1xx in Completed of the INVITE client, a transport error in its Proceeding state)
has no arrow in the figures and raises :class:`~.machine.TransactionProtocolError`; the layer
logs and drops such network inputs.
"""

from __future__ import annotations

from enum import Enum, auto

from .machine import Action as A
from .machine import MachineSpec
from .timers import TimerName


class InviteClientState(Enum):
    CALLING = auto()
    PROCEEDING = auto()
    ACCEPTED = auto()  # RFC 6026
    COMPLETED = auto()
    TERMINATED = auto()


class InviteClientInput(Enum):
    PROVISIONAL = auto()  # 1xx received
    SUCCESS = auto()  # 2xx received
    FAILURE = auto()  # 300-699 received
    TIMER_A = auto()
    TIMER_B = auto()
    TIMER_D = auto()
    TIMER_M = auto()
    TRANSPORT_ERROR = auto()


class NonInviteClientState(Enum):
    TRYING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    TERMINATED = auto()


class NonInviteClientInput(Enum):
    PROVISIONAL = auto()  # 1xx received
    FINAL = auto()  # 200-699 received
    TIMER_E = auto()
    TIMER_F = auto()
    TIMER_K = auto()
    TRANSPORT_ERROR = auto()


_S, _I = InviteClientState, InviteClientInput

INVITE_CLIENT = MachineSpec(
    name="INVITE client transaction",
    figure="RFC 3261 figure 5 (§17.1.1) + RFC 6026 §7.2",
    states=InviteClientState,
    inputs=InviteClientInput,
    initial_state=_S.CALLING,
    initial_actions=(A.SEND_REQUEST, A.START_A, A.START_B),
    terminated=_S.TERMINATED,
    table={
        (_S.CALLING, _I.TIMER_A): ((A.SEND_REQUEST, A.BACKOFF_A), _S.CALLING),
        (_S.CALLING, _I.TIMER_B): ((A.INFORM_TIMEOUT,), _S.TERMINATED),
        (_S.CALLING, _I.PROVISIONAL): ((A.PASS_RESPONSE,), _S.PROCEEDING),
        (_S.CALLING, _I.SUCCESS): ((A.PASS_RESPONSE, A.START_M), _S.ACCEPTED),
        (_S.CALLING, _I.FAILURE): ((A.SEND_ACK, A.PASS_RESPONSE, A.START_D), _S.COMPLETED),
        (_S.CALLING, _I.TRANSPORT_ERROR): ((A.INFORM_TRANSPORT_ERROR,), _S.TERMINATED),
        (_S.PROCEEDING, _I.PROVISIONAL): ((A.PASS_RESPONSE,), _S.PROCEEDING),
        (_S.PROCEEDING, _I.SUCCESS): ((A.PASS_RESPONSE, A.START_M), _S.ACCEPTED),
        (_S.PROCEEDING, _I.FAILURE): ((A.SEND_ACK, A.PASS_RESPONSE, A.START_D), _S.COMPLETED),
        (_S.ACCEPTED, _I.SUCCESS): ((A.PASS_RESPONSE,), _S.ACCEPTED),
        (_S.ACCEPTED, _I.TIMER_M): ((), _S.TERMINATED),
        (_S.COMPLETED, _I.FAILURE): ((A.SEND_ACK,), _S.COMPLETED),
        (_S.COMPLETED, _I.TRANSPORT_ERROR): ((A.INFORM_TRANSPORT_ERROR,), _S.TERMINATED),
        (_S.COMPLETED, _I.TIMER_D): ((), _S.TERMINATED),
    },
    live_timers={
        _S.CALLING: frozenset({TimerName.A, TimerName.B}),
        _S.PROCEEDING: frozenset(),
        _S.ACCEPTED: frozenset({TimerName.M}),
        _S.COMPLETED: frozenset({TimerName.D}),
        _S.TERMINATED: frozenset(),
    },
    timer_inputs={
        TimerName.A: _I.TIMER_A,
        TimerName.B: _I.TIMER_B,
        TimerName.D: _I.TIMER_D,
        TimerName.M: _I.TIMER_M,
    },
)

_N, _J = NonInviteClientState, NonInviteClientInput

NON_INVITE_CLIENT = MachineSpec(
    name="non-INVITE client transaction",
    figure="RFC 3261 figure 6 (§17.1.2)",
    states=NonInviteClientState,
    inputs=NonInviteClientInput,
    initial_state=_N.TRYING,
    initial_actions=(A.SEND_REQUEST, A.START_E, A.START_F),
    terminated=_N.TERMINATED,
    table={
        (_N.TRYING, _J.TIMER_E): ((A.SEND_REQUEST, A.BACKOFF_E), _N.TRYING),
        (_N.TRYING, _J.TIMER_F): ((A.INFORM_TIMEOUT,), _N.TERMINATED),
        (_N.TRYING, _J.TRANSPORT_ERROR): ((A.INFORM_TRANSPORT_ERROR,), _N.TERMINATED),
        (_N.TRYING, _J.PROVISIONAL): ((A.PASS_RESPONSE,), _N.PROCEEDING),
        (_N.TRYING, _J.FINAL): ((A.PASS_RESPONSE, A.START_K), _N.COMPLETED),
        (_N.PROCEEDING, _J.TIMER_E): ((A.SEND_REQUEST, A.E_T2), _N.PROCEEDING),
        (_N.PROCEEDING, _J.PROVISIONAL): ((A.PASS_RESPONSE,), _N.PROCEEDING),
        (_N.PROCEEDING, _J.TIMER_F): ((A.INFORM_TIMEOUT,), _N.TERMINATED),
        (_N.PROCEEDING, _J.TRANSPORT_ERROR): ((A.INFORM_TRANSPORT_ERROR,), _N.TERMINATED),
        (_N.PROCEEDING, _J.FINAL): ((A.PASS_RESPONSE, A.START_K), _N.COMPLETED),
        (_N.COMPLETED, _J.PROVISIONAL): ((), _N.COMPLETED),  # absorbed, §17.1.2.2
        (_N.COMPLETED, _J.FINAL): ((), _N.COMPLETED),  # absorbed, §17.1.2.2
        (_N.COMPLETED, _J.TIMER_K): ((), _N.TERMINATED),
    },
    live_timers={
        _N.TRYING: frozenset({TimerName.E, TimerName.F}),
        _N.PROCEEDING: frozenset({TimerName.E, TimerName.F}),
        _N.COMPLETED: frozenset({TimerName.K}),
        _N.TERMINATED: frozenset(),
    },
    timer_inputs={TimerName.E: _J.TIMER_E, TimerName.F: _J.TIMER_F, TimerName.K: _J.TIMER_K},
)
