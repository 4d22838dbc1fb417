"""imslab SIP stack (RFC 3261): message layer, URIs, digest auth, dialogs.

The public message API is re-exported here; see docs/sip-api.md.
"""

from ims.sip.errors import SipBuildError, SipError, SipParseError
from ims.sip.grammar import Params, quote, unquote
from ims.sip.headers import (
    AuthHeader,
    CSeq,
    Headers,
    NameAddr,
    ValueParams,
    Via,
    canonical_name,
    parse_auth,
    parse_cseq,
    parse_name_addr,
    parse_value_params,
    parse_via,
    parse_vias,
)
from ims.sip.message import (
    REASONS,
    Message,
    Request,
    Response,
    check_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
)
from ims.sip.parser import StreamParser, is_keepalive, parse_message
from ims.sip.uri import AbsoluteUri, SipUri, TelUri, Uri, escape, parse_uri, unescape, uri_equal

__all__ = [
    "REASONS",
    "AbsoluteUri",
    "AuthHeader",
    "CSeq",
    "Headers",
    "Message",
    "NameAddr",
    "Params",
    "Request",
    "Response",
    "SipBuildError",
    "SipError",
    "SipParseError",
    "SipUri",
    "StreamParser",
    "TelUri",
    "Uri",
    "ValueParams",
    "Via",
    "canonical_name",
    "check_request",
    "escape",
    "is_keepalive",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_auth",
    "parse_cseq",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_value_params",
    "parse_via",
    "parse_vias",
    "quote",
    "unescape",
    "unquote",
    "uri_equal",
]
