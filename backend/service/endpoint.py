"""The client-facing socket shared by the server and the broker: a bound ROUTER with safe defaults, replies that
never block, and the recent client identities that a shutdown notice goes to."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from backend.service.security import check_bind, secure_server_socket
from shared.protocol import Limits, Message, encode, error_message

log = logging.getLogger("motiongpt3.server")

HARD_FRAME_LIMIT_FACTOR = 4  # a frame over 4x the message limit drops the connection (no answer is possible)
READS_PER_TURN = 1000  # messages taken from one socket before the loop looks at the others again

Handler = Callable[[list[bytes]], None]


def bind_router(
    context: zmq.Context, address: str, keys_dir: Path | None, limits: Limits
) -> tuple[zmq.Socket, str, Any]:
    """A ROUTER bound to `address` (loopback unless keys are given; CURVE with keys) -> (socket, the actual
    endpoint, the authenticator to stop at close or None)."""
    check_bind(address, keys_dir)
    socket = context.socket(zmq.ROUTER)
    socket.linger = 0
    socket.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT_FACTOR * limits.max_message_bytes)
    authenticator = None if keys_dir is None else secure_server_socket(context, socket, keys_dir)
    try:
        socket.bind(address)
    except zmq.ZMQError as error:
        socket.close()
        if authenticator is not None:
            authenticator.stop()
        raise OSError(f"cannot bind {address}: {error}") from None
    return socket, socket.getsockopt_string(zmq.LAST_ENDPOINT), authenticator


def send_message(socket: zmq.Socket, identity: bytes, message: Message) -> None:
    """Route a message to `identity` without blocking; a client that is gone or not reading loses it (as ROUTER
    semantics have it). A reply that cannot be encoded (a bug: admission lets through only what encodes) is
    replaced by an `internal` error, so that the request still gets its one answer."""
    try:
        frames = encode(message)
    except ValueError as error:
        log.exception("cannot encode a %s reply", message.type)
        frames = encode(error_message("internal", f"the reply could not be encoded: {error}"[:300], None, message.id))
    send_frames(socket, [identity, *frames])


def send_frames(socket: zmq.Socket, frames: list[bytes]) -> None:
    try:
        socket.send_multipart(frames, flags=zmq.NOBLOCK)
    except zmq.ZMQError as error:
        log.debug("message to %r dropped: %s", frames[0], error)


class RecentClients:
    """The last `capacity` client identities seen (bounded, so a flood of identities cannot grow it)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def saw(self, identity: bytes) -> None:
        self._seen[identity] = None
        self._seen.move_to_end(identity)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def __iter__(self):
        return iter(list(self._seen))

    def __len__(self) -> int:
        return len(self._seen)


def drain(socket: zmq.Socket, handle: Handler) -> None:
    """Hand the socket's waiting messages (a bounded number) to `handle`; a failing handler is logged, never fatal."""
    for _ in range(READS_PER_TURN):
        try:
            frames = socket.recv_multipart(flags=zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            handle(frames)
        except Exception:  # a bug in one message's handling must not take the service down
            log.exception("handling a message")


def run_loop(stop: threading.Event, handlers: dict[zmq.Socket, Handler], tick: Callable[[float], None], tick_s: float):
    """Until `stop` is set: route each socket's messages to its handler, and call tick(now) every tick_s."""
    poller = zmq.Poller()
    for socket in handlers:
        poller.register(socket, zmq.POLLIN)
    next_tick = 0.0
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_tick:
            tick(now)
            next_tick = now + tick_s
        for socket, _ in poller.poll(timeout=100):
            drain(socket, handlers[socket])
