"""The CLI turns environmental OSErrors (an address already taken) into clear lines, exit 1."""

from __future__ import annotations

import socket

import pytest

from lab.cli import main


def test_address_in_use_is_reported_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The lab collapsed into 127.0.1.0/24 puts anchor-a's control port at 127.0.1.12:2223.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.1.12", 2223))
        rc = main(["run", "anchor", "--name", "anchor-a", "--subnet", "127.0.1", "--no-li"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err
    assert "127.0.1.12" in err and "another lab running" in err
