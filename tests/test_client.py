"""The client on its own terms: argument checks, never blocking (no server, bursts), the blocking convenience keeping
other requests' events, timeouts, and a server that appears later (all on 127.0.0.1)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from serving import (
    GATED_TEXT,
    clip,
    connected_client,
    final_of,
    gate_fixture,  # noqa: F401  (pytest fixture "gate")
    model_fixture,  # noqa: F401  (pytest fixture "model")
    running,
    running_server,
    wait_for,
)

from backend.service.server import Server, ServerConfig
from shared.client import MotionClient

GENEROUS_S = 0.25  # a poll() is budgeted at ~4 ms; this only catches a call that waits


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="address"):
        MotionClient("127.0.0.1:5555")
    with pytest.raises(ValueError, match="both"):
        MotionClient(server_public_key=b"x" * 40)
    with pytest.raises(ValueError, match="heartbeat"):
        MotionClient(heartbeat_s=5.0, timeout_s=1.0)
    with MotionClient(f"tcp://127.0.0.1:{free_loopback_port()}") as client, pytest.raises(ValueError, match="dtype"):
        client.submit("echo", {}, {"a": np.zeros(3, np.int64)})  # programming errors surface at once


def test_without_a_server_nothing_blocks_and_requests_fail_after_the_timeout(model):
    address = f"tcp://127.0.0.1:{free_loopback_port()}"
    with connected_client(address, heartbeat_s=0.1, timeout_s=0.5) as client:
        started = time.monotonic()
        request_id = client.submit("generate", {"text": "walk", "frames": 20})
        durations = []
        while not any(e.type == "disconnected" for e in client.history):
            before = time.perf_counter()
            client.poll()
            durations.append(time.perf_counter() - before)
            time.sleep(0.01)
            assert time.monotonic() - started < 30
        assert max(durations) < GENEROUS_S
        assert (final_of(client, request_id).type, final_of(client, request_id).fields["code"]) == (
            "error",
            "disconnected",
        )
        assert not client.connected
        # a server that comes up on that address later is found, by a script that only makes requests too
        server = Server(model, ServerConfig(bind=address))
        server.start()
        try:
            deadline = time.monotonic() + 30
            while (answer := client.request("hello", {})).type != "info" and time.monotonic() < deadline:
                assert answer.fields["code"] == "disconnected"  # fails fast until the server answers
                time.sleep(0.02)
            assert answer.type == "info" and client.connected and client.server_info["model"] == "tiny"
            wait_for(client, lambda e: e.type == "reconnected")
        finally:
            server.stop()


def test_a_burst_of_results_is_read_over_several_polls(model):
    payload = {"features": clip(196)}
    with running_server(model) as server, connected_client(server.address) as client:
        ids = {client.submit("echo", {"i": i}, payload) for i in range(150)}
        time.sleep(0.5)  # let the answers pile up in the socket
        durations, answered = [], set()
        deadline = time.monotonic() + 30
        while answered != ids and time.monotonic() < deadline:
            before = time.perf_counter()
            events = client.poll()
            durations.append(time.perf_counter() - before)
            answered |= {e.request_id for e in events if e.type == "echo"}
        assert answered == ids
        assert max(durations) < GENEROUS_S and len(durations) > 1


def test_the_blocking_request_keeps_other_events_for_poll_and_times_out_by_cancelling(model, gate):
    with running_server(model) as server, connected_client(server.address) as client:
        held = client.submit("generate", {"text": GATED_TEXT, "frames": 20, "steps": 2})
        running(client, held)
        before = len(client.history)
        waiting = client.submit("generate", {"text": "queued behind", "frames": 20, "steps": 2})
        echo = client.request("echo", {"x": 1})
        assert echo.type == "echo" and echo.fields == {"x": 1}
        queued = wait_for(client, lambda e: e.request_id == waiting, since=before)  # kept, not swallowed
        assert (queued.type, queued.fields["stage"]) == ("progress", "queued")
        with pytest.raises(TimeoutError, match="cancelled"):
            client.request("generate", {"text": "too slow", "frames": 20, "steps": 2}, timeout_s=0.3)
        gate.release()
        assert final_of(client, held).type == "result"
        assert final_of(client, waiting).type == "result"


def test_the_client_needs_only_numpy_and_pyzmq():
    """The add-on vendors shared/: importing the client must not pull in torch, bpy or the backend."""
    code = (
        "import sys, shared.client, shared.protocol\n"
        "heavy = {'torch', 'bpy', 'backend', 'transformers', 'scipy', 'safetensors'}\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & heavy))\n"
    )
    root = Path(__file__).resolve().parents[1]
    output = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"
