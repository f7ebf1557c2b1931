"""`check` drawn as it runs: each probe's line when its step ends; on a terminal, a "waiting for …"
line redrawn in place while a step runs. The only terminal-aware renderer; the CLI decides when to use it."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from neondoctor.render import text

if TYPE_CHECKING:
    from collections.abc import Callable

    from neondoctor.probes.base import ProbeResult

FRAME_SECONDS = 0.1
CLEAR_LINE = "\r\x1b[K"


class LiveCheck:
    """Callbacks for ``run_check``: prints as probes finish; spins only when ``spinner`` is true (a TTY)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        width: int,
        color: bool,
        verbose: bool,
        spinner: bool,
        scrub: Callable[[str], str],
    ) -> None:
        self.stream = stream
        self.width = width
        self.color = color
        self.verbose = verbose
        self.spinner = spinner
        self.scrub = scrub
        self._lock = threading.Lock()
        self._waiting: str | None = None
        self._started = 0.0
        self._drawn = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def header(self, target: dict[str, Any]) -> None:
        self._write(text.render_check_header(target, color=self.color) + "\n\n")

    def on_probe_start(self, name: str) -> None:
        if not self.spinner:
            return
        with self._lock:
            self._waiting = name
            self._started = time.monotonic()
        if self._thread is None:
            self._thread = threading.Thread(target=self._spin, name="neondoctor-spinner", daemon=True)
            self._thread.start()

    def on_probe_done(self, result: ProbeResult) -> None:
        from neondoctor.checklist import probe_json

        line = text.render_probe(probe_json(result), self.width, color=self.color, verbose=self.verbose)
        with self._lock:
            self._waiting = None
            self._clear()
            self._write(line + "\n")

    def finish(self, line: str) -> None:
        self.stop()
        self._write("\n" + line + "\n")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)
        with self._lock:
            self._waiting = None
            self._clear()

    def _spin(self) -> None:
        frame = 0
        while not self._stop.wait(FRAME_SECONDS):
            with self._lock:
                if self._waiting is None:
                    continue
                waited = time.monotonic() - self._started
                self._write(CLEAR_LINE + text.render_waiting(self._waiting, waited, frame))
                self._drawn = True
            frame += 1

    def _clear(self) -> None:
        if self._drawn:
            self._write(CLEAR_LINE)
            self._drawn = False

    def _write(self, data: str) -> None:
        self.stream.write(self.scrub(data))
        self.stream.flush()
