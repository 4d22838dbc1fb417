"""ProxyServer over real TLS (127.0.3.x): a UE registers over TLS with a client certificate,
a terminating INVITE travels back on the UE's own connection (the UE has no listener), the
router's rewrites (P-Asserted-Identity removed, SDP replaced) reach the wire, the response
processor rewrites the 200's SDP, and the stateless router sends the ACK on the UE's flow."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ims.sip.aio.proxy import ProxyServer
from ims.sip.message import Request, Response, make_response
from ims.sip.parser import StreamParser, parse_message
from ims.sip.proxy.core import ProxyConfig, ProxyCore
from ims.sip.proxy.routing import Forward, Respond, ResponseContext, RoutingContext, Target
from ims.sip.transaction import TimerConfig
from ims.sip.transport import Peer
from ims.sip.uri import SipUri

PROXY_IP, CALLER_IP, UE_IP = "127.0.3.1", "127.0.3.2", "127.0.3.4"
OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.3.2\r\ns=-\r\nc=IN IP4 127.0.3.2\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
ANCHORED = OFFER.replace(b"127.0.3.2", b"127.0.3.9")
ANSWER = OFFER.replace(b"127.0.3.2", b"127.0.3.4")
ANSWER_ANCHORED = OFFER.replace(b"127.0.3.2", b"127.0.3.8")


def _cert(tmp: Path, name: str, ip: str | None) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if ip is not None:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _free_port(kind: int) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind((PROXY_IP, 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


class PcscfLikeRouter:
    """REGISTER: remember the flow; other requests to a registered user: its flow, rewritten."""

    def __init__(self) -> None:
        self.flows: dict[str, tuple[Peer, SipUri]] = {}

    def route(self, request: Request, ctx: RoutingContext) -> Forward | Respond:
        uri = request.uri
        if request.method == "REGISTER":
            contact = request.contacts[0].uri
            assert isinstance(contact, SipUri) and request.to is not None
            user = request.to.uri.user  # type: ignore[union-attr]
            assert user is not None
            self.flows[user] = (ctx.source, contact)
            resp = make_response(request, 200, to_tag="reg")
            resp.headers.add("Contact", f"<{contact.encode()}>;expires=600")
            return Respond(status=200, response=resp)
        assert isinstance(uri, SipUri) and uri.user in self.flows
        flow, contact = self.flows[uri.user]
        return Forward(
            targets=[Target(uri=contact, next_hop=flow)],
            remove_headers=("P-Asserted-Identity",),
            body=ANCHORED,
            content_type="application/sdp",
        )

    def ack_hop(self, request: Request, ctx: RoutingContext) -> Target | None:
        for flow, contact in self.flows.values():
            if request.uri == contact:
                return Target(uri=request.uri, next_hop=flow)
        return None


async def _read(reader: asyncio.StreamReader, parser: StreamParser) -> Request | Response:
    async with asyncio.timeout(3.0):
        while True:
            msgs = parser.feed(await reader.read(65535))
            if msgs:
                assert len(msgs) == 1
                return msgs[0]


async def test_tls_ue_flow_reuse_rewrites_and_ack_routing(tmp_path: Path) -> None:
    srv_cert, srv_key = _cert(tmp_path, "pcscf", PROXY_IP)
    ue_cert, ue_key = _cert(tmp_path, "carol", None)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(srv_cert, srv_key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED  # client certificates verified
    server_ctx.load_verify_locations(cafile=str(ue_cert))
    ue_ctx = ssl.create_default_context(cafile=str(srv_cert))
    ue_ctx.load_cert_chain(ue_cert, ue_key)

    udp_port, tls_port = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM)
    router = PcscfLikeRouter()
    core = ProxyCore(
        ProxyConfig(
            name="pcscf",
            local=(
                Peer(transport="udp", host=PROXY_IP, port=udp_port),
                Peer(transport="tls", host=PROXY_IP, port=tls_port),
            ),
        ),
        router,
    )
    core.stateless_router = router.ack_hop

    def process(rc: ResponseContext) -> Response | None:
        if rc.response.status == 200 and rc.response.body:
            return rc.rewrite(body=ANSWER_ANCHORED, content_type="application/sdp")
        return None

    core.response_processor = process
    server = ProxyServer(core, timers=TimerConfig(t1=0.05, t2=0.2, t4=0.2, timer_d=0.2))
    await server.listen("udp", PROXY_IP, udp_port)
    await server.listen("tls", PROXY_IP, tls_port, ssl_context=server_ctx)
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind((CALLER_IP, 0))
    caller.setblocking(False)
    caddr = caller.getsockname()
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(
        PROXY_IP, tls_port, ssl=ue_ctx, local_addr=(UE_IP, 0)
    )
    try:
        ue_port = writer.get_extra_info("sockname")[1]
        parser = StreamParser()
        # 1. REGISTER over TLS; the 200 comes back on the same connection
        writer.write(
            (
                f"REGISTER sip:{PROXY_IP} SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS {UE_IP}:{ue_port};branch=z9hG4bKreg1;rport\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:carol@lab>;tag=c1\r\nTo: <sip:carol@lab>\r\n"
                "Call-ID: reg1\r\nCSeq: 1 REGISTER\r\n"
                f"Contact: <sip:carol@{UE_IP}:5099>\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        reg_ok = await _read(reader, parser)
        assert isinstance(reg_ok, Response) and reg_ok.status == 200
        flow = router.flows["carol"][0]
        assert flow == Peer(transport="tls", host=UE_IP, port=ue_port)
        cert = server.peer_certificate(flow)
        assert cert is not None and cert["subject"] == ((("commonName", "carol"),),)
        # 2. a terminating INVITE from a UDP caller goes on the UE's TLS connection, rewritten
        invite = (
            f"INVITE sip:carol@lab SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {caddr[0]}:{caddr[1]};branch=z9hG4bKinv1;rport\r\n"
            f"Route: <sip:{PROXY_IP}:{udp_port};lr>\r\nMax-Forwards: 70\r\n"
            "From: <sip:alice@lab>;tag=a1\r\nTo: <sip:carol@lab>\r\nCall-ID: call1\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:alice@{caddr[0]}:{caddr[1]}>\r\n"
            "P-Asserted-Identity: <sip:alice@lab>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(OFFER)}\r\n\r\n"
        ).encode() + OFFER
        caller.sendto(invite, (PROXY_IP, udp_port))
        inv = await _read(reader, parser)
        assert isinstance(inv, Request) and inv.method == "INVITE"
        assert inv.uri.encode() == f"sip:carol@{UE_IP}:5099"
        assert inv.body == ANCHORED and "P-Asserted-Identity" not in inv.headers
        assert inv.via is not None and inv.via.transport == "TLS"
        assert inv.via.sent_by == f"{PROXY_IP}:{tls_port}"
        assert server.stats["send_errors"] == 0
        # 3. the UE answers on its connection; the caller gets the rewritten 200
        ok = make_response(inv, 200, to_tag="c2", body=ANSWER,
                           headers=[("Content-Type", "application/sdp")])  # fmt: skip
        for rr in inv.headers.get_all("Record-Route"):
            ok.headers.add("Record-Route", rr)
        ok.headers.add("Contact", f"<sip:carol@{UE_IP}:5099>")
        writer.write(ok.encode())
        async with asyncio.timeout(3.0):
            while True:
                data, _ = await loop.sock_recvfrom(caller, 65535)
                got = parse_message(data)
                if isinstance(got, Response) and got.status == 200:
                    break
        assert got.body == ANSWER_ANCHORED
        rr_caller = got.headers.get("Record-Route")
        assert rr_caller == f"<sip:{PROXY_IP}:{udp_port};lr>"
        # 4. the ACK (Request-URI: the UE's Contact, where nobody listens) goes on the flow
        ack = (
            f"ACK sip:carol@{UE_IP}:5099 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {caddr[0]}:{caddr[1]};branch=z9hG4bKack1;rport\r\n"
            f"Route: {rr_caller}\r\nMax-Forwards: 70\r\n"
            "From: <sip:alice@lab>;tag=a1\r\nTo: <sip:carol@lab>;tag=c2\r\nCall-ID: call1\r\n"
            "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        caller.sendto(ack, (PROXY_IP, udp_port))
        got_ack = await _read(reader, parser)
        assert isinstance(got_ack, Request) and got_ack.method == "ACK"
        assert got_ack.headers.get("Call-ID") == "call1"
        assert server.core.stats["stateless"] == 1
    finally:
        writer.close()
        caller.close()
        server.close()


async def test_tls_listener_refuses_a_client_without_certificate(tmp_path: Path) -> None:
    srv_cert, srv_key = _cert(tmp_path, "pcscf", PROXY_IP)
    ue_cert, _ = _cert(tmp_path, "carol", None)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(srv_cert, srv_key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=str(ue_cert))
    port = _free_port(socket.SOCK_STREAM)
    core = ProxyCore(ProxyConfig(local=(Peer(transport="tls", host=PROXY_IP, port=port),)))
    server = ProxyServer(core)
    try:
        await server.listen("tls", PROXY_IP, port, ssl_context=server_ctx)
        no_cert = ssl.create_default_context(cafile=str(srv_cert))
        reader, writer = await asyncio.open_connection(
            PROXY_IP, port, ssl=no_cert, local_addr=(UE_IP, 0)
        )
        writer.write(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
        # TLS 1.3: the server's refusal arrives as an alert on the first read
        try:
            async with asyncio.timeout(3.0):
                data = await reader.read(100)
            assert data == b""
        except (ssl.SSLError, ConnectionResetError):
            pass
        writer.close()
        assert server.core.stats["requests"] == 0
        try:
            await server.listen("tls", PROXY_IP, 0)
        except ValueError as exc:
            assert "already listening" in str(exc) or "ssl_context" in str(exc)
        else:
            raise AssertionError("a second TLS listener without context was accepted")
    finally:
        server.close()
