"""Main-thread work cut into slices: generators that yield between slices of a few milliseconds, run by the timer."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")

# Steps[T]: yields progress (0..1, or None when unknown) after each slice; `return value` ends it.
Steps = Generator[float | None, None, T]

SLICE_S = 0.004  # main-thread work per timer tick; with the write or a frame restore, ticks stay under 10 ms


def run_steps(steps: Steps[T]) -> T:
    """Run every slice now (tests, benchmarks, scripts) and return the result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
