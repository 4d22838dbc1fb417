from __future__ import annotations

from ims.log import redact_keys


def test_secret_fields_are_redacted() -> None:
    event = {"event": "crypto", "master_key": "abcd", "psk": "01", "call_id": "x", "ssrc": 5}
    out = redact_keys(None, "info", dict(event))
    assert out["master_key"] == "<redacted>"
    assert out["psk"] == "<redacted>"
    assert out["call_id"] == "x"
    assert out["ssrc"] == 5
