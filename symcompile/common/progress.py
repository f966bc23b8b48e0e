"""A live progress line for long compiles: phase, nodes done / total, elapsed time.

The compiler reports through a plain callback, ``progress(phase, done, total)`` (total
0 when a phase has no count). `ProgressLine` is the callback the command line and the
runtime's first `forward()` pass: on a terminal it draws one line on its stream, updated
in place, once a compile has taken longer than `delay` (a fast compile prints nothing),
and erases it when the compile ends. Used as a context manager, a background thread
keeps the elapsed time running during a phase that reports nothing for a while. It writes
nothing when the stream is not a terminal (logs, pipes, CI).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Progress = Callable[[str, int, int], None]

_WORDS = {"lower": "lowering", "differentiate": "differentiating", "optimize": "optimising",
          "schedule": "scheduling", "emit": "writing the module for"}


def ignore(phase: str, done: int = 0, total: int = 0) -> None:
    """The callback when nobody watches."""


class ProgressLine:
    """``symcompile: differentiating model.py: 1200/3000 nodes... 2.3 s`` on a terminal."""

    def __init__(self, stream, what: str, delay: float = 1.0, interval: float = 0.1,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.stream, self.what = stream, what
        self.delay, self.interval, self.clock = delay, interval, clock
        self.active = bool(getattr(stream, "isatty", None) and stream.isatty())
        self.started = clock()
        self.shown = False
        self._state = ("", 0, 0)
        self._last = -float("inf")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, phase: str, done: int = 0, total: int = 0) -> None:
        if not self.active:
            return
        with self._lock:
            new_phase = phase != self._state[0]
            self._state = (phase, done, total)
            now = self.clock()
            if now - self.started >= self.delay and (
                    new_phase or done == total or now - self._last >= self.interval):
                self._draw(now)

    def _draw(self, now: float) -> None:
        phase, done, total = self._state
        count = f": {done}/{total} nodes" if total else ""
        self.stream.write(f"\r\x1b[Ksymcompile: {_WORDS.get(phase, phase)} {self.what}{count}"
                          f"... {now - self.started:.1f} s")
        self.stream.flush()
        self._last = now
        self.shown = True

    def _tick(self) -> None:
        """Redraw the line (the seconds) while a phase is quiet, until stopped."""
        if self._stop.wait(max(0.0, self.delay - (self.clock() - self.started))):
            return
        while True:
            with self._lock:
                if self._state[0]:
                    self._draw(self.clock())
            if self._stop.wait(0.25):
                return

    def close(self) -> None:
        """Stop redrawing and erase the line, if one was written."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        with self._lock:
            if self.shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self.shown = False

    def __enter__(self) -> ProgressLine:
        if self.active:
            self._ticker = threading.Thread(target=self._tick, name="symcompile-progress",
                                            daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
