"""MIKEY key exchange modes as sans-I/O initiator/responder state machines.

psk (RFC 3830 §3.1), pke (§3.2), dh (§3.3, DH-SIGN), dhhmac (RFC 4650), rsa_r (RFC 4738).
"""
