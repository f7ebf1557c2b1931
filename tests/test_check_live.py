"""`check` as a user watches it: lines appear as steps end, a spinner only on a terminal, Ctrl-C keeps what
finished and exits 130. Run in a real pty and in a pipe, against a silent peer that makes tls wait."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from contract import validate

ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}, "NO_COLOR": "1"}


def _url(peer: Any) -> str:
    host, port = peer
    return f"postgresql://alice:pw-live-9@{host}:{port}/app?sslmode=require"


class Watched:
    """A `neondoctor check` child whose output is read as it arrives, on a pty or a pipe."""

    def __init__(self, *args: str, tty: bool) -> None:
        argv = [sys.executable, "-m", "neondoctor", "check", *args]
        if tty:
            master, slave = pty.openpty()
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=ENV, close_fds=True)
            os.close(slave)
            self.fd = master
        else:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV)
            assert self.proc.stdout is not None
            self.fd = self.proc.stdout.fileno()
        self.output = ""

    def read_until(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} did not appear; got {self.output!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    assert text in self.output, f"{text!r} never appeared; got {self.output!r}"
                self.output += chunk.decode("utf-8", "replace")
        return self.output

    def finish(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    break
                self.output += chunk.decode("utf-8", "replace")
            elif self.proc.poll() is not None:
                break
        code = self.proc.wait(timeout=5)
        assert "pw-live-9" not in self.output
        return code


def test_on_a_terminal_lines_appear_one_by_one_with_a_spinner_and_ctrl_c_keeps_them(silent_peer: Any) -> None:
    run = Watched(_url(silent_peer), "--timeout", "8", tty=True)
    run.read_until("waiting for tls…")
    seen = run.output
    assert "[✓] tcp" in seen and "[-] dns" in seen and "[✓] url" in seen
    assert "[✓] tls" not in seen and "[✗] tls" not in seen
    assert run.proc.poll() is None, "tcp's line must be on screen while tls still waits"
    run.read_until(" s")
    time.sleep(0.3)
    run.proc.send_signal(signal.SIGINT)
    code = run.finish()
    assert code == 130, run.output
    assert "interrupted during tls" in run.output
    tail = run.output.rsplit("waiting for tls", 1)[1]
    assert "\r\x1b[K" in tail, "the spinner line is cleared before the final line"


def test_in_a_pipe_lines_stream_without_a_spinner_and_ctrl_c_exits_130(silent_peer: Any) -> None:
    run = Watched(_url(silent_peer), "--timeout", "8", tty=False)
    run.read_until("[✓] tcp")
    time.sleep(0.6)
    assert run.proc.poll() is None
    run.proc.send_signal(signal.SIGINT)
    code = run.finish()
    assert code == 130
    assert "interrupted during tls" in run.output
    assert "waiting for" not in run.output and "\r" not in run.output and "\x1b" not in run.output


def test_json_on_ctrl_c_is_the_partial_report(silent_peer: Any) -> None:
    run = Watched(_url(silent_peer), "--timeout", "8", "--json", tty=False)
    time.sleep(1.5)
    run.proc.send_signal(signal.SIGINT)
    code = run.finish()
    assert code == 130
    report = validate(run.output, "check")
    assert report["interrupted"] is True and report["interrupted_during"] == "tls"
    assert report["exit_code"] == 130 and report["failed_probe"] is None
    assert [p["name"] for p in report["probes"]] == ["url", "dns", "tcp"]


@pytest.mark.parametrize("tty", [True, False], ids=["tty", "pipe"])
def test_a_finished_check_prints_each_probe_once(closed_port: Any, tty: bool) -> None:
    host, port = closed_port
    run = Watched(f"postgresql://alice:pw-live-9@{host}:{port}/app", tty=tty)
    code = run.finish()
    assert code == 1
    assert run.output.count("[✗] tcp") == 1
    assert ("waiting for" in run.output) is False or tty


def test_json_on_a_terminal_has_no_spinner(closed_port: Any) -> None:
    host, port = closed_port
    run = Watched(f"postgresql://alice:pw-live-9@{host}:{port}/app", "--json", tty=True)
    assert run.finish() == 1
    assert "waiting for" not in run.output and "\x1b" not in run.output
    assert json.loads(run.output.replace("\r\n", "\n"))["failed_probe"] == "tcp"
