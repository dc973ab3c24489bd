"""Jobs in flight: one backend client polled from a `bpy.app.timers` tick on the main thread; main-thread work (reading
animation back, preparing a result's keys) runs in slices across ticks; each result is then written by the
`motion.apply_result` operator in one call, one undo step. No socket call here ever blocks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .steps import SLICE_S, Steps

TICK_BUSY_S = 0.03  # timer interval while jobs run
TICK_WORK_S = 0.005  # while slices of main-thread work are waiting (the UI handles its events in between)
TICK_IDLE_S = 0.25  # while connected and idle (connection state, heartbeats)
TERMINAL = ("done", "error", "cancelled")
PENDING = ("running", "result", "ready")  # waiting for the backend / preparing the keys / ready to write


@dataclass
class Job:
    """One request: what was asked, where its result goes, and how far it got."""

    request_id: str
    kind: str  # generate | caption | predict | inbetween
    target: str  # armature object name
    params: dict[str, Any]  # everything the writer needs (start frame, span, scene fps, context joints, ...)
    status: str = "running"  # running | result (keys being prepared) | ready (to write) | done | error | cancelled
    stage: str = ""
    progress: float = 0.0  # 0..1
    eta_s: float | None = None
    message: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    batch: str | None = None  # "Caption all Actions" groups its jobs
    started: float = field(default_factory=time.monotonic)
    prepared: Any = None  # what `prepare` returned: the result ready to write


@dataclass
class Task:
    """Main-thread work in slices (`steps`, a generator: one slice per `next`); `job`: the job it prepares, if any."""

    label: str
    steps: Steps[Any]
    job: Job | None = None
    progress: float = 0.0


class Controller:
    """Owns the MotionClient and the jobs; `tick()` is the timer body (returns the next interval, or None to stop)."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        apply: Callable[[str], None],
        prepare: Callable[[Job], Steps[Any]] | None = None,
    ):
        self._client_factory = client_factory
        self._apply = apply  # called with a request id whose result is ready (runs the undo-registered operator)
        self._prepare = prepare  # a result's main-thread preparation, in slices (None: apply at once)
        self.client: Any = None
        self.jobs: dict[str, Job] = {}
        self.tasks: list[Task] = []
        self.batch_sizes: dict[str, int] = {}  # "Caption all Actions": how many Actions a batch will send
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
        return [j for j in self.jobs.values() if j.status in PENDING]

    def busy(self) -> bool:
        """Anything in flight: jobs at the backend or being written, or main-thread work waiting."""
        return bool(self.tasks) or bool(self.active())

    def start_task(self, label: str, steps: Steps[Any], job: Job | None = None) -> Task:
        """Queue main-thread work; the timer runs its slices (reading animation, preparing a result)."""
        task = Task(label, steps, job)
        self.tasks.append(task)
        return task

    def _drop_task(self, task: Task) -> None:
        self.tasks.remove(task)
        task.steps.close()  # runs the generator's `finally` blocks: scene state is restored

    def cancel(self, request_id: str) -> None:
        job = self.jobs.get(request_id)
        if job is None or job.status in TERMINAL:
            return
        job.status, job.message = "cancelled", "cancelled"
        job.arrays, job.prepared = {}, None
        for task in [t for t in self.tasks if t.job is job]:
            self._drop_task(task)
        if self.client is not None:
            self.client.cancel(request_id)

    def cancel_all(self) -> None:
        for task in list(self.tasks):
            self._drop_task(task)
        for request_id in list(self.jobs):
            self.cancel(request_id)

    def forget_finished(self) -> None:
        self.jobs = {k: j for k, j in self.jobs.items() if j.status not in TERMINAL}

    # -- the timer body ---------------------------------------------------------------------------------------

    def tick(self) -> float | None:
        """Poll the client once, update jobs, then either write one ready result (one operator call) or run slices
        of main-thread work for about `SLICE_S`; never blocks on the network."""
        started = time.perf_counter()
        if self.client is None and not self.tasks:
            return None
        if self.client is not None:
            for event in self.client.poll():
                self._handle(event)
        for job in [j for j in self.jobs.values() if j.status == "result" and j.prepared is None]:
            if self._prepare is None:
                job.status = "ready"
            elif not any(t.job is job for t in self.tasks):
                self.start_task(f"{job.kind}: preparing keys", self._prepare(job), job)
        ready = next((j for j in self.jobs.values() if j.status == "ready"), None)
        if ready is not None:  # the write gets a tick of its own
            try:
                self._apply(ready.request_id)
            except Exception as error:  # a failed write must not kill the timer
                ready.status, ready.message = "error", f"could not apply the result: {error}"
                self.last_error = ready.message
        else:
            self._run_slices(started)
        if self.client is not None and self.client.connected:
            self.state = "connected"
        self.tick_seconds.append(time.perf_counter() - started)
        if self.tasks or any(j.status == "ready" for j in self.jobs.values()):
            return TICK_WORK_S
        return TICK_BUSY_S if self.active() else TICK_IDLE_S

    def _run_slices(self, started: float) -> None:
        """Slices of the first task while the next one (as long as the last) still fits in `SLICE_S` since `started`
        (always at least one slice)."""
        while self.tasks:
            # A result being prepared goes before reading animation (it is nearly done; a long read must not hold it).
            task = next((t for t in self.tasks if t.job is not None), self.tasks[0])
            slice_started = time.perf_counter()
            try:
                progress = next(task.steps)
                task.progress = task.progress if progress is None else progress
            except StopIteration as done:
                self.tasks.remove(task)
                if task.job is not None and task.job.status == "result":
                    task.job.prepared, task.job.status = done.value, "ready"
                return  # the write (or the next task) starts on the next tick
            except Exception as error:  # bad data, the armature deleted meanwhile, the request refused
                self.tasks.remove(task)
                message = f"{task.label}: {error}"
                if task.job is not None:
                    task.job.status, task.job.message = "error", message
                self.last_error = message
                return
            now = time.perf_counter()
            if (now - started) + (now - slice_started) > SLICE_S:
                return

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

    def server_label(self) -> str:
        """"model · device" of the connected backend (from its hello `info`), or "" before it answered."""
        info = getattr(self.client, "server_info", None) if self.client is not None else None
        if self.state != "connected" or not isinstance(info, dict):
            return ""
        return " · ".join(str(info[key]) for key in ("model", "device") if info.get(key))

    def summary(self) -> tuple[str, float, float | None]:
        """(status text, progress 0..1, ETA seconds) over the active jobs (batch jobs count as one bar)."""
        active = self.active()
        reading = [t for t in self.tasks if t.job is None]
        if reading and not any(j.batch for j in active):
            return (reading[0].label, reading[0].progress, None)
        if not active:
            return (self.last_error or "idle", 0.0, None)
        batch = [j for j in self.jobs.values() if j.batch is not None and j.batch == active[0].batch]
        if batch:
            total = max(self.batch_sizes.get(batch[0].batch or "", 0), len(batch))
            done = sum(j.status in TERMINAL for j in batch)
            return (f"captioning {done}/{total} Actions", done / total, None)
        job = active[0]
        return (f"{job.kind}: {job.message}", job.progress, job.eta_s)
