"""A one-line progress bar on standard error (redrawn in place on a terminal, a plain line now and then elsewhere)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 24
REDRAW_S = 0.2  # on a terminal
LOG_EVERY_S = 10.0  # elsewhere (a log file, CI)


def _duration(elapsed: float) -> str:
    seconds = round(elapsed)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else (f"{seconds // 60}:{seconds % 60:02d}")
    )


class ProgressBar:
    """`[#####.....] 120/5000 files 2.3 files/s ETA 35:20 | 3 errors`."""

    def __init__(self, total: int, unit: str = "files", stream: TextIO | None = None) -> None:
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.last_draw = -1e9
        self.done = 0
        self.note = ""

    def restart(self) -> None:
        """Count the rate from now (after loading a model, say)."""
        self.start = time.perf_counter()

    def update(self, done: int, note: str = "") -> None:
        self.done, self.note = done, note
        now = time.perf_counter()
        if now - self.last_draw >= (REDRAW_S if self.tty else LOG_EVERY_S) or done >= self.total:
            self.last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        filled = int(BAR_WIDTH * self.done / self.total) if self.total else BAR_WIDTH
        eta = (
            f"ETA {_duration((self.total - self.done) / rate)}"
            if 0 < rate and self.done < self.total
            else (f"{_duration(elapsed)}")
        )
        line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done}/{self.total} {self.unit} {rate:.1f}/s {eta}"
        line += f" | {self.note}" if self.note else ""
        self.stream.write(f"\r{line}\x1b[K" if self.tty else f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
