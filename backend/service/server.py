"""The MotionGPT3 backend service: a ZeroMQ ROUTER front, a bounded job queue with micro-batching, and one worker
thread that owns the model.

Threads: the I/O thread owns the sockets. It validates every message (`backend.service.admission`: the protocol's
checks with the model's limits and token counter, before anything is acknowledged), answers hello / heartbeat /
echo / cancel itself, queues jobs, and forwards what the worker sends over an inproc pipe. The
worker thread takes micro-batches from the `JobTable` and runs them through `backend.service.tasks`, reporting
progress and checking for cancellation between network steps. A job that crashes a batch is isolated by running
the batch's jobs one by one, so the crash becomes an `internal` error for that job only.

Worker mode (`ServerConfig.connect`): instead of binding a ROUTER for clients, the server connects a DEALER to a
broker (`backend.service.broker`), which puts each client's identity in front of the message exactly as a ROUTER would;
frames with an empty identity are the broker's own control messages.
"""

from __future__ import annotations

import logging
import os
import signal
import socket as socketlib
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from backend.service.admission import Admission, immediate_reply
from backend.service.endpoint import RecentClients, bind_router, drain, run_loop, send_frames, send_message
from backend.service.jobs import DuplicateJob, Job, JobTable, QueueFull
from backend.service.security import DEFAULT_ADDRESS
from backend.service.tasks import TASK_RUNNERS, request_error
from backend.tasks.inference import GenerationCancelled, TaskControl
from shared.motion.humanml3d import FPS
from shared.protocol import (
    JOB_TYPES,
    PROTOCOL_VERSION,
    Limits,
    Message,
    ProtocolError,
    encode,
    error_message,
)

log = logging.getLogger("motiongpt3.server")

CONTROL = b""  # identity frame of broker <-> worker control messages


@dataclass(frozen=True)
class ServerConfig:
    """How the service listens and schedules. Defaults: loopback only, 32 queued jobs, batches of 16 rows."""

    bind: str = DEFAULT_ADDRESS
    keys_dir: Path | None = None  # CURVE keys (`motiongpt3 keys`); required for a non-loopback bind
    connect: str | None = None  # worker mode: the broker's backend address
    name: str | None = None  # reported in info and results (default host:pid)
    queue_size: int = 32  # jobs waiting (not running); one more is refused with `busy`
    max_batch: int = 16  # rows (prompts x candidates, or clips) per model call
    batch_window_s: float = 0.005  # how long a new batch waits for compatible requests
    heartbeat_s: float = 1.0
    progress_interval_s: float = 0.05  # at most this often per job (the last step is always sent)
    stop_timeout_s: float = 5.0  # how long a graceful stop waits for the running batch to stop
    broker_timeout_s: float = 10.0  # worker mode: stop when the broker has been silent this long (0 = never)
    max_clients: int = 1024  # identities remembered for the shutdown notice


def backend_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("motiongpt3-blender")
    except PackageNotFoundError:
        return "0+unknown"


def process_rss_bytes() -> int | None:
    """Resident memory of this process (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Server:
    """Serves one model. `start()` returns the bound address; `stop()` tells clients and waits; tests run it on
    threads in-process, `motiongpt3 serve` runs `serve_forever()`."""

    def __init__(self, model: Any, config: ServerConfig = ServerConfig(), limits: Limits | None = None) -> None:
        self.model = model
        self.config = config
        self.admission = Admission.for_model(model.config, limits)
        self.name = config.name or f"{socketlib.gethostname()}:{os.getpid()}"
        self.address: str | None = None
        self.stats: Counter[str] = Counter()
        self._jobs = JobTable(config.queue_size)
        self._context = zmq.Context()
        self._stop_requested = threading.Event()
        self._notify = True
        self._clients = RecentClients(config.max_clients)
        self._authenticator: Any = None
        self._threads: list[threading.Thread] = []
        self._started_s = time.monotonic()
        self._broker_seen_s = time.monotonic()
        self._parameters = sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else None

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Bind (or connect to the broker), start the I/O and worker threads; returns the address."""
        config = self.config
        worker_mode = config.connect is not None
        if worker_mode:
            front = self._context.socket(zmq.DEALER)
            front.linger = 0
            front.routing_id = self.name.encode()
            front.connect(config.connect)
            self.address = config.connect
        else:
            front, self.address, self._authenticator = bind_router(
                self._context, config.bind, config.keys_dir, self.limits
            )
        pipe = f"inproc://motiongpt3-worker-{id(self)}"
        events = self._context.socket(zmq.PAIR)
        events.bind(pipe)
        out = self._context.socket(zmq.PAIR)
        out.connect(pipe)
        self._threads = [
            threading.Thread(target=self._io_loop, args=(front, events), name="motiongpt3-io", daemon=True),
            threading.Thread(target=self._work_loop, args=(out,), name="motiongpt3-worker", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("serving %s (%s) on %s at %s", self.model.config.name, self.device, self.name, self.address)
        return self.address

    def stop(self, notify: bool = True) -> None:
        """Stop. notify=True: every pending job gets `shutting_down`, and so does every recent client; False: vanish
        without a word (as a crash would)."""
        if not self._stop_requested.is_set():  # the first reason to stop decides whether clients are told
            self._notify = notify
            self._stop_requested.set()
        self._join_io()

    def _join_io(self) -> None:
        for thread in self._threads:
            if thread.name == "motiongpt3-io":
                thread.join()

    def serve_forever(self) -> None:
        """Run until SIGINT or SIGTERM, then stop gracefully (main thread only)."""

        def on_signal(number: int, frame: object) -> None:
            log.info("signal %d: stopping", number)
            self._stop_requested.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not self._stop_requested.wait(0.5):
                pass
            self._join_io()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @property
    def limits(self) -> Limits:
        return self.admission.limits

    @property
    def device(self) -> str:
        return str(getattr(self.model, "device", "cpu"))

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    # ------------------------------------------------------------------------------------------ I/O thread

    def _io_loop(self, front: zmq.Socket, events: zmq.Socket) -> None:
        handlers = {events: lambda frames: self._forward(front, frames), front: lambda f: self._on_frames(front, f)}
        run_loop(self._stop_requested, handlers, lambda now: self._tick(front, now), self.config.heartbeat_s)
        self._shutdown(front, events)

    def _tick(self, front: zmq.Socket, now: float) -> None:
        """Worker mode: tell the broker we are alive (with our info); stop when the broker has gone."""
        if self.config.connect is None:
            return
        self._send(front, CONTROL, Message("info", None, self._info()))
        timeout = self.config.broker_timeout_s
        if timeout and now - self._broker_seen_s > timeout:
            log.warning("no word from the broker at %s for %.0f s: stopping", self.config.connect, timeout)
            self._notify = False
            self._stop_requested.set()

    def _send(self, front: zmq.Socket, identity: bytes, message: Message) -> None:
        send_message(front, identity, message)
        self.stats["replies"] += 1

    def _forward(self, front: zmq.Socket, frames: list[bytes]) -> None:
        """An event from the worker thread, on to its client (dropped after a stop without notice)."""
        if self._notify or not self._stop_requested.is_set():
            send_frames(front, frames)

    def _on_frames(self, front: zmq.Socket, frames: list[bytes]) -> None:
        identity, body = frames[0], frames[1:]
        if self.config.connect is not None:
            self._broker_seen_s = time.monotonic()
            if identity == CONTROL:
                return  # the broker's heartbeat
        else:
            self._clients.saw(identity)
        self.stats["messages"] += 1
        try:
            request = self.admission.decode(body, pending=lambda request_id: self._jobs.pending((identity, request_id)))
        except ProtocolError as error:
            self.stats["refused"] += 1
            self._send(front, identity, error.to_message())
            return
        try:
            self._on_request(front, identity, request)
        except Exception as error:  # a bug here must not take the service down
            log.exception("handling %s %s", request.type, request.id)
            request_id = None if request.type == "cancel" else request.id
            self._send(front, identity, error_message("internal", f"{type(error).__name__}: {error}", None, request_id))

    def _on_request(self, front: zmq.Socket, identity: bytes, request: Message) -> None:
        kind, request_id = request.type, request.id
        if (reply := immediate_reply(request, self._info)) is not None:
            self._send(front, identity, reply)
        elif kind == "cancel":
            job = self._jobs.cancel((identity, request_id))
            if job is not None and self._jobs.finish(job):
                self._send(front, identity, Message("cancelled", request_id, {"stage": "queued"}))
        elif kind in JOB_TYPES:
            self._accept(front, Job(identity, request))

    def _accept(self, front: zmq.Socket, job: Job) -> None:
        request_id = job.request.id
        try:
            ahead = self._jobs.add(job)
        except QueueFull:
            message = f"the job queue is full ({self.config.queue_size} jobs waiting); try again later"
            self._send(front, job.identity, error_message("busy", message, None, request_id))
            return
        except DuplicateJob:  # admission refuses pending ids first; kept for safety, without the id (see reply_id)
            message = f"id: {request_id!r} is the id of one of this client's pending requests"
            self._send(front, job.identity, error_message("bad_request", message, "id", None))
            return
        self.stats["accepted"] += 1
        progress = {"stage": "queued", "step": 0, "total": 0, "eta_s": None, "position": ahead}
        self._send(front, job.identity, Message("progress", request_id, progress))

    def _info(self) -> dict[str, Any]:
        return {
            "server": "motiongpt3",
            "version": backend_version(),
            "protocol": PROTOCOL_VERSION,
            "name": self.name,
            "model": self.model.config.name,
            "parameters": self._parameters,
            "device": self.device,
            "tasks": list(JOB_TYPES),
            "fps": FPS,
            "limits": self.limits.to_dict(),
            "heartbeat_s": self.config.heartbeat_s,
            "queue_size": self.config.queue_size,
            "max_batch": self.config.max_batch,
            "workers": 1,
            "stats": {
                **self._jobs.counts(),
                "done": self.stats["done"],
                "rss_bytes": process_rss_bytes(),
                "uptime_s": round(time.monotonic() - self._started_s, 3),
            },
        }

    def _shutdown(self, front: zmq.Socket, events: zmq.Socket) -> None:
        """Refuse queued jobs, stop the running batch, tell the clients, close (I/O thread)."""
        notify = self._notify
        notice = "the server is shutting down"
        queued, running = self._jobs.close()
        for job in queued:
            if self._jobs.finish(job) and notify:
                self._send(front, job.identity, error_message("shutting_down", notice, None, job.request.id))
        worker = self._threads[1]
        deadline = time.monotonic() + self.config.stop_timeout_s
        forward = lambda frames: self._forward(front, frames)  # noqa: E731
        while worker.is_alive() and time.monotonic() < deadline:
            if events.poll(timeout=50):
                drain(events, forward)
        drain(events, forward)
        for job in running:  # still running after the timeout: answer for the worker
            if self._jobs.finish(job) and notify:
                self._send(front, job.identity, error_message("shutting_down", notice, None, job.request.id))
        if notify:
            if self.config.connect is not None:
                self._send(front, CONTROL, error_message("shutting_down", f"worker {self.name} is stopping"))
            else:
                for identity in self._clients:
                    self._send(front, identity, error_message("shutting_down", notice))
        front.close(linger=1000 if notify else 0)
        events.close(linger=0)
        if self._authenticator is not None:
            self._authenticator.stop()
        if worker.is_alive():
            log.warning("the model did not stop within %.1f s; leaving its thread behind", self.config.stop_timeout_s)
        else:
            self._context.term()
        log.info("stopped")

    # ------------------------------------------------------------------------------------------ worker thread

    def _work_loop(self, out: zmq.Socket) -> None:
        try:
            while True:
                batch = self._jobs.take_batch(self.config.max_batch, self.config.batch_window_s, timeout_s=0.2)
                if batch is None:
                    return
                if batch:
                    try:
                        self._run_batch(batch, out)
                    except Exception as error:  # last resort: a bug in our own plumbing
                        log.exception("worker")
                        for job in batch:
                            self._finish(out, job, error_message("internal", repr(error), None, job.request.id))
        finally:
            out.close(linger=1000)

    def _finish(self, out: zmq.Socket, job: Job, message: Message) -> None:
        """Send the job's one final reply (no-op when another path already answered it)."""
        if self._jobs.finish(job):
            self.stats["done"] += 1
            out.send_multipart([job.identity, *encode(message)])

    def _run_batch(self, batch: list[Job], out: zmq.Socket) -> None:
        batch = [job for job in batch if not job.final]
        if not batch:
            return
        kind = batch[0].request.type
        stage = {"name": "starting"}
        started = time.monotonic()
        try:
            outputs = TASK_RUNNERS[kind](self.model, [job.request for job in batch], self._control(batch, out, stage))
        except GenerationCancelled:
            for job in batch:
                self._finish(out, job, self._stopped_reply(job, stage["name"]))
            return
        except Exception as error:
            if len(batch) > 1 and not self._jobs.closed:
                for job in batch:  # find the request that fails; the others still get their results
                    self._run_batch([job], out)
                return
            (job,) = batch
            refused = request_error(error)
            if refused is None:
                log.exception("%s %s failed", kind, job.request.id)
                message = f"{kind} failed: {type(error).__name__}: {error}"
                reply = error_message("internal", message, None, job.request.id)
            else:
                reply = error_message("bad_request", refused[0], refused[1], job.request.id)
            self._finish(out, job, reply)
            return
        meta = {"fps": FPS, "batch_size": len(batch), "elapsed_s": round(time.monotonic() - started, 4)}
        for job, (fields, arrays) in zip(batch, outputs, strict=True):
            fields = {**fields, **meta, "worker": self.name}
            self._finish(out, job, Message("result", job.request.id, fields, arrays))

    def _stopped_reply(self, job: Job, stage: str) -> Message:
        if self._jobs.closed:
            return error_message("shutting_down", "the server is shutting down", None, job.request.id)
        return Message("cancelled", job.request.id, {"stage": stage})

    def _control(self, batch: list[Job], out: zmq.Socket, stage: dict[str, str]) -> TaskControl:
        """Progress events (throttled, with an ETA per stage) and cancellation checks for one batch."""
        interval = self.config.progress_interval_s
        first_seen: dict[str, tuple[float, int]] = {}
        last_sent = [0.0]

        def progress(name: str, done: int, total: int) -> None:
            now = time.monotonic()
            stage["name"] = name
            start_s, start_done = first_seen.setdefault(name, (now, done))
            if done != total and now - last_sent[0] < interval:
                return
            last_sent[0] = now
            eta = None if done <= start_done else (now - start_s) / (done - start_done) * (total - done)
            fields = {"stage": name, "step": done, "total": total, "eta_s": None if eta is None else round(eta, 3)}
            for job in batch:
                if not job.final:
                    out.send_multipart([job.identity, *encode(Message("progress", job.request.id, fields))])

        def should_cancel() -> bool:
            if self._jobs.closed:
                return True
            for job in batch:  # jobs cancelled one by one are answered now; their rows finish unseen
                if job.cancel_requested:
                    self._finish(out, job, Message("cancelled", job.request.id, {"stage": stage["name"]}))
            return all(job.final for job in batch)

        return TaskControl(progress=progress, should_cancel=should_cancel)
