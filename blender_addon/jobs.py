"""Jobs in flight: one backend client polled from a `bpy.app.timers` tick on the main thread; results are handed to
the `motion.apply_result` operator so each result is one undo step. No socket call here ever blocks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TICK_BUSY_S = 0.03  # timer interval while jobs run
TICK_IDLE_S = 0.25  # while connected and idle (connection state, heartbeats)
TERMINAL = ("done", "error", "cancelled")


@dataclass
class Job:
    """One request: what was asked, where its result goes, and how far it got."""

    request_id: str
    kind: str  # generate | caption | predict | inbetween
    target: str  # armature object name
    params: dict[str, Any]  # everything the writer needs (start frame, span, scene fps, context joints, ...)
    status: str = "running"  # running | result | done | error | cancelled
    stage: str = ""
    progress: float = 0.0  # 0..1
    eta_s: float | None = None
    message: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    batch: str | None = None  # "Caption all Actions" groups its jobs
    started: float = field(default_factory=time.monotonic)


class Controller:
    """Owns the MotionClient and the jobs; `tick()` is the timer body (returns the next interval, or None to stop)."""

    def __init__(self, client_factory: Callable[[], Any], apply: Callable[[str], None]):
        self._client_factory = client_factory
        self._apply = apply  # called with a request id whose result arrived (runs the undo-registered operator)
        self.client: Any = None
        self.jobs: dict[str, Job] = {}
        self.state = "not connected"  # not connected | connecting | connected | disconnected
        self.last_error = ""
        self.last_caption = ""
        self.tick_seconds: list[float] = []  # duration of each tick (benchmarks, tests)

    # -- connection -------------------------------------------------------------------------------------------

    def ensure_client(self) -> Any:
        if self.client is None:
            self.client = self._client_factory()
            self.state = "connecting"
        return self.client

    def close(self) -> None:
        """Cancel everything in flight and drop the client."""
        self.cancel_all()
        if self.client is not None:
            self.client.close()
            self.client = None
        self.state = "not connected"

    # -- jobs -------------------------------------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        fields: dict[str, Any],
        arrays: dict[str, np.ndarray] | None,
        target: str,
        params: dict[str, Any],
        batch: str | None = None,
    ) -> Job:
        client = self.ensure_client()
        request_id = client.submit(kind, fields, arrays)
        job = Job(request_id, kind, target, params, batch=batch, message="sent")
        self.jobs[request_id] = job
        return job

    def active(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.status in ("running", "result")]

    def cancel(self, request_id: str) -> None:
        job = self.jobs.get(request_id)
        if job is None or job.status in TERMINAL:
            return
        job.status, job.message = "cancelled", "cancelled"
        job.arrays = {}
        if self.client is not None:
            self.client.cancel(request_id)

    def cancel_all(self) -> None:
        for request_id in list(self.jobs):
            self.cancel(request_id)

    def forget_finished(self) -> None:
        self.jobs = {k: j for k, j in self.jobs.items() if j.status not in TERMINAL}

    # -- the timer body ---------------------------------------------------------------------------------------

    def tick(self) -> float | None:
        """Poll the client once, update jobs, apply arrived results; never blocks on the network."""
        started = time.perf_counter()
        if self.client is None:
            return None
        for event in self.client.poll():
            self._handle(event)
        for job in [j for j in self.jobs.values() if j.status == "result"]:
            try:
                self._apply(job.request_id)
            except Exception as error:  # a failed write must not kill the timer
                job.status, job.message = "error", f"could not apply the result: {error}"
                self.last_error = job.message
        if self.client is not None and self.client.connected:
            self.state = "connected"
        self.tick_seconds.append(time.perf_counter() - started)
        return TICK_BUSY_S if self.active() else TICK_IDLE_S

    def _handle(self, event: Any) -> None:
        if event.type == "disconnected":
            self.state = "disconnected"
            self.last_error = event.fields.get("message", "backend not reachable")
            return
        if event.type == "reconnected":
            self.state = "connected"
            self.last_error = ""
            return
        job = self.jobs.get(event.request_id) if event.request_id else None
        if event.type == "info" or job is None or job.status in TERMINAL:
            return  # late events of cancelled jobs are dropped
        if event.type == "progress":
            total = event.fields.get("total") or 0
            job.stage = str(event.fields.get("stage", ""))
            job.progress = float(event.fields.get("step", 0)) / total if total else job.progress
            job.eta_s = event.fields.get("eta_s")
            job.message = job.stage
        elif event.type == "result":
            job.status, job.fields, job.arrays, job.progress = "result", dict(event.fields), dict(event.arrays), 1.0
            job.message = "writing"
        elif event.type == "error":
            job.status = "error"
            job.message = f"{event.fields.get('code', 'error')}: {event.fields.get('message', '')}".strip()
            self.last_error = job.message
        elif event.type == "cancelled":
            job.status, job.message = "cancelled", "cancelled"

    # -- what the panel shows ---------------------------------------------------------------------------------

    def summary(self) -> tuple[str, float, float | None]:
        """(status text, progress 0..1, ETA seconds) over the active jobs (batch jobs count as one bar)."""
        active = self.active()
        if not active:
            return (self.last_error or "idle", 0.0, None)
        batch = [j for j in self.jobs.values() if j.batch is not None and j.batch == active[0].batch]
        if batch:
            done = sum(j.status in TERMINAL for j in batch)
            return (f"captioning {done}/{len(batch)} Actions", done / len(batch), None)
        job = active[0]
        return (f"{job.kind}: {job.message}", job.progress, job.eta_s)
