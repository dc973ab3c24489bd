"""The server's job table: a bounded FIFO queue, micro-batch selection, cancellation and exactly-once final replies.

Shared by the I/O thread (adds, cancels) and the model's worker thread (takes batches); one lock guards it all.
A job is `queued` until the worker takes it, then `running`; `finish` claims the job's single final reply and
forgets the job, so a result, a cancellation and a shutdown notice racing each other still give one reply.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from shared.protocol import Message


@dataclass(eq=False)
class Job:
    """One accepted request from one client identity."""

    identity: bytes
    request: Message
    received_s: float = field(default_factory=time.monotonic)
    running: bool = False
    cancel_requested: bool = False
    final: bool = False

    @property
    def key(self) -> tuple[bytes, str]:
        return self.identity, self.request.id

    @property
    def rows(self) -> int:
        """Model batch rows the job needs (one per candidate for generation, one per clip for captions)."""
        return int(self.request.fields.get("candidates", 1))

    @property
    def batch_key(self) -> tuple[Any, ...] | None:
        """Jobs with equal keys run in one model call; None = runs alone (one clip per call)."""
        fields = self.request.fields
        if self.request.type == "generate":
            return ("generate", fields["candidates"], fields["guidance"], fields["steps"])
        if self.request.type == "caption":
            return ("caption",)
        return None


class QueueFull(Exception):  # noqa: N818
    """The queue holds `capacity` jobs already."""


class DuplicateJob(Exception):  # noqa: N818
    """The client already has a pending job with this id."""


class JobTable:
    """Pending jobs by (identity, request id), with the queue of those not yet taken by the worker."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._jobs: dict[tuple[bytes, str], Job] = {}
        self._queue: deque[Job] = deque()
        self._changed = threading.Condition()
        self.closed = False  # set at shutdown: take_batch returns None, running jobs see should_cancel True

    def add(self, job: Job) -> int:
        """Queue a job; returns how many jobs are ahead of it. Raises QueueFull or DuplicateJob."""
        with self._changed:
            if job.key in self._jobs:
                raise DuplicateJob(job.request.id)
            if len(self._queue) >= self.capacity:
                raise QueueFull
            self._jobs[job.key] = job
            self._queue.append(job)
            self._changed.notify_all()
            return len(self._queue) - 1

    def pending(self, key: tuple[bytes, str]) -> bool:
        """Whether the client has a job with this id that has not had its final reply."""
        with self._changed:
            return key in self._jobs

    def cancel(self, key: tuple[bytes, str]) -> Job | None:
        """A queued job is removed and returned (its canceller replies); a running one is flagged for the worker
        (which replies); an unknown or finished one is ignored."""
        with self._changed:
            job = self._jobs.get(key)
            if job is None or job.final:
                return None
            if job.running:
                job.cancel_requested = True
                return None
            self._queue.remove(job)
            return job

    def finish(self, job: Job) -> bool:
        """Claim the job's final reply: True exactly once per job; the job is forgotten."""
        with self._changed:
            if job.final:
                return False
            job.final = True
            self._jobs.pop(job.key, None)
            return True

    def take_batch(self, max_rows: int, window_s: float, timeout_s: float) -> list[Job] | None:
        """The oldest job plus the compatible queued jobs (in order, up to max_rows), waiting up to window_s for
        more to arrive. [] when nothing came within timeout_s; None once closed."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._queue or self.closed, timeout_s):
                return []
            if self.closed:
                return None
            first = self._queue.popleft()
            first.running = True
            batch, rows = [first], first.rows
            if first.batch_key is None:
                return batch
            window_end = time.monotonic() + window_s
            while True:
                for job in [j for j in self._queue if j.batch_key == first.batch_key]:
                    if rows + job.rows > max_rows:
                        break
                    self._queue.remove(job)
                    job.running = True
                    batch.append(job)
                    rows += job.rows
                remaining = window_end - time.monotonic()
                if rows >= max_rows or remaining <= 0 or self.closed:
                    return batch
                self._changed.wait(remaining)

    def close(self) -> tuple[list[Job], list[Job]]:
        """Stop taking jobs; returns (queued jobs, now removed; running jobs)."""
        with self._changed:
            self.closed = True
            queued = list(self._queue)
            self._queue.clear()
            self._changed.notify_all()
            return queued, [job for job in self._jobs.values() if job.running]

    def counts(self) -> dict[str, int]:
        with self._changed:
            return {"queued": len(self._queue), "running": sum(job.running for job in self._jobs.values())}
