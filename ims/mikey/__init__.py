"""MIKEY (RFC 3830, 4650, 4738) and its SDP carriage (RFC 4567): codec, KDF, crypto, modes.

See docs/mikey.md (what and why) and docs/mikey-api.md (the API other packages use).
"""
