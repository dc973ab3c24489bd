"""A non-blocking ZeroMQ client for the MotionGPT3 backend, safe to drive from a Blender timer or a script.

    client = MotionClient("tcp://127.0.0.1:5555")
    request_id = client.submit("generate", {"text": "a person waves", "frames": 60})
    ...                                    # in a timer callback, every ~0.1 s:
    for event in client.poll():            # never blocks; also sends heartbeats and notices a dead server
        if event.type == "result" and event.request_id == request_id:
            motions = event.arrays["motions"]   # (candidates, 60, 263) float32

`request(...)` is the blocking form for scripts. Liveness: a heartbeat goes out every `heartbeat_s`; when nothing has
come back for `timeout_s` after something was sent, the server is taken for dead: every pending request ends with an
`error` event (code "disconnected"), a "disconnected" event follows, and the socket is replaced by a fresh one that
keeps saying hello until the server answers again ("reconnected"). Every request ends with exactly one final event:
result, error, cancelled or info (for hello), or echo.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq
import zmq.auth
from zmq.utils.monitor import parse_monitor_message

from shared.protocol import DEFAULT_ADDRESS, FINAL_REPLY_TYPES, Message, ProtocolError, decode_reply, encode

MAX_MESSAGES_PER_POLL = 256  # with the time budget, bounds one poll() when a burst has arrived
POLL_BUDGET_S = 0.004  # poll() stops reading after this long; the rest waits for the next call
CLIENT_NAME = "motiongpt3-client"
_HANDSHAKE_FAILURES = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "the server refused this client's key",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "security handshake failed (missing or wrong CURVE keys on one side)",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "security handshake failed",
}


@dataclass(frozen=True)
class Event:
    """What poll() returns: a reply from the server, or a connection change (request_id None)."""

    type: str  # "info" | "progress" | "result" | "error" | "cancelled" | "echo" | "disconnected" | "reconnected"
    request_id: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        """True for the one event that ends a request."""
        return self.request_id is not None and self.type in FINAL_REPLY_TYPES


def load_public_key(path: str | Path) -> bytes:
    """The Z85 public key from a `.key` (or `.key_secret`) certificate file written by `motiongpt3 keys`."""
    public, _ = zmq.auth.load_certificate(str(path))
    return public


def _wire_arrays(arrays: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Float arrays go as float32 (the protocol's only float type); others as they are."""
    result = {}
    for name, array in (arrays or {}).items():
        array = np.asarray(array)
        result[name] = array.astype(np.float32) if array.dtype.kind == "f" else array
    return result


class MotionClient:
    """Talks to one server address over a DEALER socket; see the module docstring."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        server_public_key: bytes | str | None = None,
        client_secret_key_file: str | Path | None = None,
        heartbeat_s: float = 1.0,
        timeout_s: float = 5.0,
    ) -> None:
        if not address.startswith(("tcp://", "ipc://", "inproc://")):
            raise ValueError(f"address {address!r}: expected tcp://HOST:PORT (or ipc://, inproc://)")
        if (server_public_key is None) != (client_secret_key_file is None):
            raise ValueError("CURVE needs both server_public_key and client_secret_key_file (or neither)")
        if not 0 < heartbeat_s < timeout_s:
            raise ValueError(f"need 0 < heartbeat_s < timeout_s, got {heartbeat_s} and {timeout_s}")
        self.address = address
        self.heartbeat_s = float(heartbeat_s)
        self.timeout_s = float(timeout_s)
        self._curve = None
        if server_public_key is not None:
            public, secret = zmq.auth.load_certificate(str(client_secret_key_file))
            if secret is None:
                raise ValueError(f"{client_secret_key_file}: not a secret key file (expected NAME.key_secret)")
            server_key = server_public_key.encode() if isinstance(server_public_key, str) else server_public_key
            self._curve = (server_key, public, secret)
        self._context = zmq.Context()
        self._socket: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._pending: dict[str, str] = {}  # request id -> type
        self._buffered: deque[Event] = deque()  # events made locally or held back by request()
        self._state = "connecting"  # -> "connected" -> "disconnected" -> "connected" ...
        self._hello_id = ""
        self._awaiting_since: float | None = None  # first send not yet followed by any reply
        self._last_sent = 0.0
        self._handshake_problem: str | None = None
        self.server_info: dict[str, Any] | None = None
        self._closed = False
        self._open()

    # ------------------------------------------------------------------------------------------ public API

    @property
    def connected(self) -> bool:
        """True once the server has answered and until it stops answering."""
        return self._state == "connected"

    def submit(self, type: str, fields: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> str:
        """Send a request without waiting; returns its id. Programming errors (NaN in fields, unknown type, a
        non-protocol dtype) raise ValueError here; everything else arrives as an event from poll()."""
        request_id = uuid.uuid4().hex
        frames = encode(Message(type, request_id, dict(fields), _wire_arrays(arrays)))
        if self._state == "disconnected":
            self._buffered.extend(self._pump())  # the server may be back: a script that only submits must see it
        self._pending[request_id] = type
        if self._state == "disconnected":
            self._fail(request_id, "disconnected", f"not connected to {self.address}: the server is not answering")
        elif not self._send(frames):
            self._fail(request_id, "busy", "the client's send queue is full; the server is not reading")
        return request_id

    def cancel(self, request_id: str) -> None:
        """Ask the server to drop a queued or running request; its final event (normally "cancelled") follows."""
        if request_id in self._pending and self._state != "disconnected":
            self._send(encode(Message("cancel", request_id)))

    def poll(self) -> list[Event]:
        """Events since the last call, oldest first; never waits. Sends heartbeats and detects a dead server."""
        if self._closed:
            return []
        events = list(self._buffered)
        self._buffered.clear()
        return events + self._pump()

    def request(
        self,
        type: str,
        fields: dict[str, Any],
        arrays: dict[str, np.ndarray] | None = None,
        timeout_s: float | None = None,
    ) -> Event:
        """Submit and wait for the final event (result, error, cancelled, info or echo). A dead server ends the wait
        with an error event (code "disconnected") within `timeout_s` of the client; `timeout_s` here bounds the
        whole request (then it is cancelled and TimeoutError raised). Other requests' events stay for poll()."""
        request_id = self.submit(type, fields, arrays)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for event in list(self._buffered):
            if event.request_id == request_id and event.final:
                self._buffered.remove(event)
                return event
        while True:
            for event in self._pump():
                if event.request_id == request_id and event.final:
                    return event
                self._buffered.append(event)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self.cancel(request_id)
                self._pending.pop(request_id, None)
                raise TimeoutError(f"{type} request {request_id}: no answer within {timeout_s:g} s (cancelled)")
            wait = self.heartbeat_s / 2 if remaining is None else min(self.heartbeat_s / 2, remaining)
            if self._socket is not None:
                self._socket.poll(timeout=max(1, int(wait * 1000)))

    def close(self) -> None:
        """Close the socket at once (nothing queued is sent) and release the ZeroMQ context."""
        if self._closed:
            return
        self._closed = True
        self._close_socket()
        self._context.term()

    def __enter__(self) -> MotionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ internals

    def _open(self) -> None:
        """A fresh DEALER (new identity, empty queues) connecting to the server, and a hello to learn it is there."""
        socket = self._context.socket(zmq.DEALER)
        socket.linger = 0
        socket.setsockopt(zmq.RECONNECT_IVL, 100)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if self._curve is not None:
            socket.curve_serverkey, socket.curve_publickey, socket.curve_secretkey = self._curve
        self._monitor = socket.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        )
        socket.connect(self.address)
        self._socket = socket
        self._hello_id = "hello-" + uuid.uuid4().hex[:12]  # one per socket: late answers still count
        self._awaiting_since = None
        self._say_hello()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.disable_monitor()
            self._socket.close(linger=0)
            self._socket = None
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None

    def _say_hello(self) -> None:
        self._send(encode(Message("hello", self._hello_id, {"client": CLIENT_NAME})))

    def _send(self, frames: list[bytes]) -> bool:
        """Queue frames on the socket without blocking; False when the queue is full."""
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        now = time.monotonic()
        self._last_sent = now
        if self._awaiting_since is None:
            self._awaiting_since = now
        return True

    def _fail(self, request_id: str, code: str, message: str) -> None:
        """End a pending request locally with an error event."""
        if self._pending.pop(request_id, None) is not None:
            self._buffered.append(Event("error", request_id, {"code": code, "message": message, "field": None}))

    def _pump(self) -> list[Event]:
        """Read what has arrived, then run the liveness clock; never waits."""
        events: list[Event] = []
        stop_at = time.monotonic() + POLL_BUDGET_S
        for _ in range(MAX_MESSAGES_PER_POLL):
            try:
                frames = self._socket.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            self._on_message(frames, events)
            if time.monotonic() > stop_at:
                break
        self._read_monitor()
        now = time.monotonic()
        if self._awaiting_since is not None and now - self._awaiting_since > self.timeout_s:
            self._on_silence(events)
        elif now - self._last_sent >= self.heartbeat_s:
            if self._state == "connected":
                self._send(encode(Message("heartbeat", None)))
            else:
                self._say_hello()
        return events

    def _read_monitor(self) -> None:
        while self._monitor is not None:
            try:
                frames = self._monitor.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            event = parse_monitor_message(frames)["event"]
            self._handshake_problem = _HANDSHAKE_FAILURES.get(event, self._handshake_problem)

    def _on_message(self, frames: list[bytes], events: list[Event]) -> None:
        self._awaiting_since = None
        self._handshake_problem = None
        try:
            message = decode_reply(frames)
        except ProtocolError as error:
            events.append(Event("error", None, {"code": error.code, "message": f"bad reply: {error}", "field": None}))
            return
        was = self._state
        self._state = "connected"
        if was == "disconnected":
            events.append(Event("reconnected", None, {"address": self.address}))
        if message.id == self._hello_id:  # our own hello: info (or an error, e.g. unsupported_version)
            if message.type == "info":
                self.server_info = message.fields
            if was != "connected" or message.type == "error":
                events.append(Event(message.type, None, message.fields))
        elif message.type == "error" and message.id is None:
            if message.fields.get("code") == "shutting_down":
                self._lose_server(events, "the server is shutting down")
            else:
                events.append(Event("error", None, message.fields))
        elif message.id in self._pending:
            if message.type in FINAL_REPLY_TYPES:
                del self._pending[message.id]
            if message.type == "info":
                self.server_info = message.fields
            events.append(Event(message.type, message.id, message.fields, message.arrays))

    def _on_silence(self, events: list[Event]) -> None:
        reason = self._handshake_problem or f"no answer from {self.address} for {self.timeout_s:g} s"
        self._lose_server(events, reason)

    def _lose_server(self, events: list[Event], reason: str) -> None:
        """Fail every pending request, report the disconnection once, and start over on a fresh socket."""
        for request_id in list(self._pending):
            self._fail(request_id, "disconnected", f"lost the server: {reason}")
        events.extend(self._buffered)
        self._buffered.clear()
        if self._state != "disconnected":
            events.append(Event("disconnected", None, {"reason": reason, "address": self.address}))
        self._state = "disconnected"
        self._close_socket()
        self._open()
