"""A live progress line for long compiles: phase, nodes done / total, elapsed time.

The compiler reports through a plain callback, ``progress(phase, done, total)`` (total
0 when a phase has no count). `ProgressLine` is the callback the command line and the
runtime's first `forward()` pass: it writes one line on a terminal, updated in place, once
a compile has taken longer than `delay` (a fast compile prints nothing), at most ten
times a second, and erases it when the compile ends. It writes nothing when the stream is
not a terminal (logs, pipes, CI).
"""

from __future__ import annotations

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
        self._last = -float("inf")
        self._phase = ""

    def __call__(self, phase: str, done: int = 0, total: int = 0) -> None:
        if not self.active:
            return
        now = self.clock()
        if now - self.started < self.delay:
            return
        if phase == self._phase and now - self._last < self.interval and done != total:
            return
        self._phase, self._last = phase, now
        count = f": {done}/{total} nodes" if total else ""
        self.stream.write(f"\r\x1b[Ksymcompile: {_WORDS.get(phase, phase)} {self.what}{count}"
                          f"... {now - self.started:.1f} s")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """Erase the line, if one was written."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
