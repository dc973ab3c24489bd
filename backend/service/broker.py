"""Several model workers behind one address: a ROUTER-ROUTER broker that routes each job by its request id.

Plain `zmq.proxy` with a DEALER backend deals messages round-robin, so a `cancel` would land on an arbitrary
worker; this broker (the load-balancing broker of the ZeroMQ guide) remembers which worker holds each
(client, request id) and sends the cancel there. New jobs go to the worker with the fewest jobs in hand.

Workers are `Server`s in worker mode: their DEALER connects to the broker's backend and announces itself with
`info` control messages (identity frame empty) every heartbeat; the broker answers each with a heartbeat and
forgets a worker that has been silent for `worker_timeout_s`, failing its jobs with `internal`. A worker that stops
gracefully answers its own jobs and then sends a `shutting_down` control error. The broker validates every client
message through the same admission as a server (`backend.service.admission`: the model's limits, the tokenizer
counting texts, pending ids) and answers hello, heartbeat and echo itself, so a client cannot tell it from a server.
The broker knows the model from its config alone (limits, tokenizer, parameter count from a weightless copy).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from backend.model.config import MotionGPT3Config
from backend.service.admission import Admission, immediate_reply
from backend.service.endpoint import RecentClients, bind_router, run_loop, send_frames, send_message
from backend.service.security import DEFAULT_ADDRESS, check_bind
from backend.service.server import CONTROL, ServerConfig, backend_version, process_rss_bytes
from shared.motion.humanml3d import FPS
from shared.protocol import (
    FINAL_REPLY_TYPES,
    JOB_TYPES,
    PROTOCOL_VERSION,
    Limits,
    Message,
    ProtocolError,
    encode,
    error_message,
    parse_header,
)

log = logging.getLogger("motiongpt3.broker")

Key = tuple[bytes, str]  # (client identity, request id)


@dataclass(frozen=True)
class BrokerConfig:
    """Front for clients (same rules as the server: loopback unless keys) and a loopback backend for workers."""

    bind: str = DEFAULT_ADDRESS
    backend: str = "tcp://127.0.0.1:*"
    keys_dir: Path | None = None
    heartbeat_s: float = 1.0
    worker_timeout_s: float = 5.0
    max_clients: int = 1024
    queue_size: int = ServerConfig.queue_size  # each worker's (the broker starts its workers with these)
    max_batch: int = ServerConfig.max_batch


@dataclass
class WorkerEntry:
    """A worker the broker has heard from."""

    identity: bytes
    info: dict[str, Any]
    seen_s: float
    jobs: set[Key] = field(default_factory=set)

    @property
    def capacity(self) -> int:
        return int(self.info.get("queue_size", 1)) + int(self.info.get("max_batch", 1))


def parameter_count(config: MotionGPT3Config) -> int:
    """The model's parameter count from its config alone (a copy on the meta device: no weights, no memory)."""
    import torch

    from backend.model.motiongpt3 import MotionGPT3

    with torch.device("meta"):
        return sum(parameter.numel() for parameter in MotionGPT3(config).parameters())


class Broker:
    """Runs on its own thread: `start()` returns the client address; `backend_address` is where workers connect."""

    def __init__(self, model: MotionGPT3Config, config: BrokerConfig = BrokerConfig()) -> None:
        self.config = config
        self.model = model
        self.admission = Admission.for_model(model)
        self._parameters = parameter_count(model)
        self.address: str | None = None
        self.backend_address: str | None = None
        self.workers: dict[bytes, WorkerEntry] = {}
        self._routes: dict[Key, bytes] = {}
        self._clients = RecentClients(config.max_clients)
        self._context = zmq.Context()
        self._stop_requested = threading.Event()
        self._notify = True
        self._thread: threading.Thread | None = None
        self._authenticator: Any = None
        self._started_s = time.monotonic()

    def start(self) -> str:
        front, self.address, self._authenticator = bind_router(
            self._context, self.config.bind, self.config.keys_dir, self.limits
        )
        check_bind(self.config.backend, None)  # workers are local: the backend never leaves this machine
        back = self._context.socket(zmq.ROUTER)
        back.linger = 0
        back.bind(self.config.backend)
        self.backend_address = back.getsockopt_string(zmq.LAST_ENDPOINT)
        self._thread = threading.Thread(target=self._loop, args=(front, back), name="motiongpt3-broker", daemon=True)
        self._thread.start()
        log.info("broker on %s, workers connect to %s", self.address, self.backend_address)
        return self.address

    def stop(self, notify: bool = True) -> None:
        self._notify = notify
        self._stop_requested.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def limits(self) -> Limits:
        """The model's limits (its workers serve the same model, and check the same)."""
        return self.admission.limits

    # ------------------------------------------------------------------------------------------ loop

    def _loop(self, front: zmq.Socket, back: zmq.Socket) -> None:
        handlers = {
            back: lambda frames: self._on_worker(front, back, frames),
            front: lambda frames: self._on_client(front, back, frames),
        }
        run_loop(self._stop_requested, handlers, lambda now: self._expire_workers(front, now), self.config.heartbeat_s)
        self._shutdown(front, back)

    def _on_client(self, front: zmq.Socket, back: zmq.Socket, frames: list[bytes]) -> None:
        identity, body = frames[0], frames[1:]
        self._clients.saw(identity)
        try:
            request = self.admission.decode(body, pending=lambda request_id: (identity, request_id) in self._routes)
        except ProtocolError as error:
            send_message(front, identity, error.to_message())
            return
        kind, key = request.type, (identity, request.id)
        if (reply := immediate_reply(request, self._info)) is not None:
            send_message(front, identity, reply)
        elif kind == "cancel":
            if key in self._routes:
                send_frames(back, [self._routes[key], identity, *body])
        elif kind in JOB_TYPES:
            self._dispatch(front, back, key, body)

    def _dispatch(self, front: zmq.Socket, back: zmq.Socket, key: Key, body: list[bytes]) -> None:
        identity, request_id = key
        if key in self._routes:  # admission refuses pending ids first; kept for safety, without the id (see reply_id)
            message = f"id: {request_id!r} is the id of one of this client's pending requests"
            send_message(front, identity, error_message("bad_request", message, "id", None))
            return
        free = [w for w in self.workers.values() if len(w.jobs) < w.capacity]
        if not free:
            code = "busy" if self.workers else "unavailable"
            message = "every worker's queue is full; try again later" if self.workers else "no worker is ready"
            send_message(front, identity, error_message(code, message, None, request_id))
            return
        worker = min(free, key=lambda w: len(w.jobs))
        worker.jobs.add(key)
        self._routes[key] = worker.identity
        send_frames(back, [worker.identity, identity, *body])

    def _on_worker(self, front: zmq.Socket, back: zmq.Socket, frames: list[bytes]) -> None:
        worker_id, envelope, body = frames[0], frames[1], frames[2:]
        now = time.monotonic()
        if envelope == CONTROL:
            header = parse_header(body[0])
            if header.get("type") == "info":
                self._register(worker_id, header.get("fields", {}), now)
                send_frames(back, [worker_id, CONTROL, *encode(Message("heartbeat", None))])
            elif header.get("type") == "error":
                self._drop_worker(front, worker_id, "the worker stopped")
            return
        worker = self.workers.get(worker_id)
        if worker is not None:
            worker.seen_s = now
        send_frames(front, [envelope, *body])
        header = parse_header(body[0], Limits(max_header_bytes=1 << 20))
        if header.get("type") in FINAL_REPLY_TYPES and isinstance(header.get("id"), str):
            key = (envelope, header["id"])
            if self._routes.get(key) == worker_id:
                del self._routes[key]
                if worker is not None:
                    worker.jobs.discard(key)

    def _register(self, worker_id: bytes, info: dict[str, Any], now: float) -> None:
        worker = self.workers.get(worker_id)
        if worker is None:
            self.workers[worker_id] = WorkerEntry(worker_id, info, now)
            log.info("worker %s joined (%d in all)", worker_id.decode(errors="replace"), len(self.workers))
        else:
            worker.info, worker.seen_s = info, now

    def _expire_workers(self, front: zmq.Socket, now: float) -> None:
        for worker in list(self.workers.values()):
            if now - worker.seen_s > self.config.worker_timeout_s:
                self._drop_worker(front, worker.identity, "the worker running this job stopped answering")

    def _drop_worker(self, front: zmq.Socket, worker_id: bytes, reason: str) -> None:
        worker = self.workers.pop(worker_id, None)
        if worker is None:
            return
        log.warning("worker %s left: %s", worker_id.decode(errors="replace"), reason)
        for identity, request_id in worker.jobs:
            if self._routes.pop((identity, request_id), None) is not None:
                send_message(front, identity, error_message("internal", reason, None, request_id))

    def _info(self) -> dict[str, Any]:
        """The same fields as a server's info (shared/protocol.md): the model's from its config, `device` the
        ready workers' devices (null while none is ready), `stats` summed over the workers and the broker."""
        workers = list(self.workers.values())
        stats = [w.info.get("stats", {}) for w in workers]
        totals = {key: sum(s.get(key) or 0 for s in stats) for key in ("queued", "running", "done", "rss_bytes")}
        totals["rss_bytes"] += process_rss_bytes() or 0  # the workers' and the broker's own
        totals["uptime_s"] = round(time.monotonic() - self._started_s, 3)
        devices = sorted({str(w.info.get("device")) for w in workers})
        return {
            "server": "motiongpt3-broker",
            "version": backend_version(),
            "protocol": PROTOCOL_VERSION,
            "name": self.address,
            "model": self.model.name,
            "parameters": self._parameters,
            "device": ", ".join(devices) if devices else None,
            "tasks": list(JOB_TYPES),
            "fps": FPS,
            "limits": self.limits.to_dict(),
            "heartbeat_s": self.config.heartbeat_s,
            "queue_size": self.config.queue_size,
            "max_batch": self.config.max_batch,
            "workers": len(workers),
            "stats": totals,
        }

    def _shutdown(self, front: zmq.Socket, back: zmq.Socket) -> None:
        if self._notify:
            notice = "the server is shutting down"
            for identity, request_id in list(self._routes):
                send_message(front, identity, error_message("shutting_down", notice, None, request_id))
            for identity in self._clients:
                send_message(front, identity, error_message("shutting_down", notice))
        front.close(linger=1000 if self._notify else 0)
        back.close(linger=0)
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()
        log.info("broker stopped")
