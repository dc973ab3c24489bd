"""The service in-process on 127.0.0.1 with a tiny model: every task against direct inference, progress, queue limits,
micro-batching, cancellation, crash isolation, several clients, graceful stop, dead-server detection, safe binds."""

from __future__ import annotations

import inspect
import time

import numpy as np
import pytest
import zmq
from serving import (
    GATED_TEXT,
    LOOPBACK_ANY_PORT,
    SLOW_STEPS,
    RecordingClient,
    clip,
    connected_client,
    final_of,
    gate_fixture,  # noqa: F401  (pytest fixture "gate")
    model_fixture,  # noqa: F401  (pytest fixture "model")
    oracle_copy,
    queued,
    running,
    running_server,
    wait_for,
)

from backend.service import tasks as server_tasks
from backend.service.broker import BrokerConfig
from backend.service.security import InsecureBindError, check_bind, is_loopback
from backend.service.server import Server, ServerConfig
from backend.tasks import inference
from shared.client import MotionClient
from shared.protocol import DEFAULT_ADDRESS, FINAL_REPLY_TYPES, JOB_TYPES, Message, decode_reply, encode

STEPS = 6  # diffusion steps of the quick requests


@pytest.fixture(scope="module")
def oracle(model):
    return oracle_copy(model)


@pytest.fixture(scope="module")
def server(model):
    with running_server(model) as server:
        yield server


@pytest.fixture
def client(server):
    with connected_client(server.address, heartbeat_s=0.2) as client:
        yield client


def motions(event) -> np.ndarray:
    assert event.type == "result", event.fields
    result = event.arrays["motions"]
    assert result.dtype == np.float32
    return result


def hold_worker(client: MotionClient) -> str:
    """A job that holds the worker until the gate opens or it is cancelled; returns once it is running."""
    request_id = client.submit("generate", {"text": GATED_TEXT, "frames": 20, "steps": 2})
    running(client, request_id)
    return request_id


# ----------------------------------------------------------------------------------------------- tasks


def test_hello_reports_the_model_device_tasks_and_limits(client):
    info = client.request("hello", {})
    assert info.type == "info"
    fields = info.fields
    assert (fields["protocol"], fields["model"], fields["device"]) == (1, "tiny", "cpu")
    assert fields["tasks"] == list(JOB_TYPES)
    assert fields["limits"]["max_frames"] == 196 and fields["limits"]["max_candidates"] == 8
    assert fields["fps"] == 20


def test_generate_returns_the_motions_of_text_to_motion(client, oracle):
    event = client.request(
        "generate", {"text": "a person waves", "seconds": 1.2, "seed": 5, "candidates": 2, "steps": STEPS}
    )
    expected = inference.text_to_motion(oracle, ["a person waves"], 24, 5, candidates=2, steps=STEPS)[0]
    assert motions(event).shape == (2, 24, 263)  # 1.2 s at 20 fps
    np.testing.assert_allclose(motions(event), np.stack(expected), atol=1e-5)
    assert event.fields["fps"] == 20


def test_caption_predict_and_inbetween_return_what_the_tasks_return(client, oracle):
    source = clip(30)
    caption = client.request("caption", {}, {"features": source})
    assert caption.type == "result"
    assert caption.fields["caption"] == inference.motion_to_text(oracle, [source])[0]

    predicted = client.request("predict", {"frames": 12, "seed": 2, "steps": STEPS}, {"features": source})
    assert motions(predicted).shape == (1, 42, 263)
    expected = inference.predict(oracle, source, 12, seed=2, steps=STEPS)[0]
    np.testing.assert_allclose(motions(predicted)[0], expected, atol=1e-5)

    known = np.zeros(30, dtype=np.uint8)
    known[:6] = known[24:] = known[15] = 1
    filled = client.request("inbetween", {"seed": 4, "steps": STEPS}, {"features": source, "known": known})
    assert motions(filled).shape == (1, 30, 263)
    # the known frames come back as they were sent
    np.testing.assert_allclose(motions(filled)[0][known == 1], source[known == 1], atol=1e-5)
    expected = inference.inbetween(oracle, source, known.astype(bool), seed=4, steps=STEPS)[0]
    np.testing.assert_allclose(motions(filled)[0], expected, atol=1e-4)


def test_inbetween_with_a_text_returns_what_the_task_returns(client, oracle):
    source = clip(30)
    known = np.zeros(30, dtype=np.uint8)
    known[:6] = known[24:] = 1
    fields = {"text": " a person jumps up ", "seed": 4, "steps": STEPS}
    filled = client.request("inbetween", fields, {"features": source, "known": known})
    assert filled.type == "result" and motions(filled).shape == (1, 30, 263)
    np.testing.assert_allclose(motions(filled)[0][known == 1], source[known == 1], atol=1e-5)
    expected = inference.inbetween(oracle, source, known.astype(bool), seed=4, steps=STEPS, text="a person jumps up")
    np.testing.assert_allclose(motions(filled)[0], expected[0], atol=1e-4)
    refused = client.request("inbetween", {"text": "x" * 1001}, {"features": source, "known": known})
    assert (refused.type, refused.fields["code"], refused.fields["field"]) == ("error", "bad_request", "text")


def test_progress_events_come_before_the_result(client):
    request_id = client.submit("generate", {"text": "a person jumps", "frames": 20, "steps": 8})
    final = final_of(client, request_id)
    assert final.type == "result"
    mine = client.of(request_id)
    assert mine[-1] is final
    progress = [e.fields for e in mine[:-1]]
    assert all(e.type == "progress" for e in mine[:-1])
    assert progress[0]["stage"] == "queued"
    diffusion = [p for p in progress if p["stage"] == "diffusion"]
    steps = [p["step"] for p in diffusion]
    assert steps == sorted(set(steps)) and steps[-1] == 8  # increasing, and the last step is always sent
    assert all(p["total"] == 8 for p in diffusion)
    assert all(p["eta_s"] is None or p["eta_s"] >= 0 for p in diffusion)


def test_requests_beyond_the_model_limits_are_refused_naming_the_field(client):
    event = client.request("generate", {"text": "walk", "frames": 197})
    assert (event.type, event.fields["code"], event.fields["field"]) == ("error", "bad_request", "frames")
    event = client.request("predict", {"frames": 10}, {"features": clip(197)})
    assert (event.fields["code"], event.fields["field"]) == ("bad_request", "features")


def test_arrays_come_back_exactly_through_the_server(client):
    arrays = {
        "f": np.arange(2 * 3 * 5, dtype=">f4").reshape(2, 3, 5) / 7,
        "u": np.array([0, 255, 7], np.uint8),
        "b": np.array([[True, False], [False, True]]),
    }
    event = client.request("echo", {"note": "é ✓"}, arrays)
    assert event.type == "echo" and event.fields == {"note": "é ✓"}
    for name, array in arrays.items():
        back = event.arrays[name]
        assert back.dtype == array.dtype.newbyteorder("<") and back.shape == array.shape
        np.testing.assert_array_equal(back, array)


# ----------------------------------------------------------------------------------------------- scheduling


def test_a_full_queue_answers_busy(model, gate):
    with running_server(model, queue_size=2) as server, connected_client(server.address) as client:
        blocker = hold_worker(client)
        waiting = [client.submit("generate", {"text": f"walk {i}", "frames": 20, "steps": STEPS}) for i in range(2)]
        acks = [queued(client, request_id) for request_id in waiting]
        assert [(a.fields["stage"], a.fields["position"]) for a in acks] == [("queued", 0), ("queued", 1)]
        refused = client.submit("generate", {"text": "one too many", "frames": 20})
        event = final_of(client, refused)
        assert (event.type, event.fields["code"], event.fields["field"]) == ("error", "busy", None)
        assert "full" in event.fields["message"]
        client.cancel(blocker)
        assert [final_of(client, request_id).type for request_id in waiting] == ["result", "result"]


def test_compatible_requests_that_arrive_together_run_as_one_batch(client, oracle, gate):
    blocker = hold_worker(client)
    generate = [("a person walks", 20, 1), ("someone runs in a circle", 33, 2), ("a man waves", 25, 3)]
    ids = {}
    for text, frames, seed in generate[:2]:
        ids[text] = client.submit("generate", {"text": text, "frames": frames, "seed": seed, "steps": STEPS})
    ids["caption 1"] = client.submit("caption", {}, {"features": clip(20, 1)})
    ids["predict"] = client.submit("predict", {"frames": 10, "steps": STEPS}, {"features": clip(20, 2)})
    text, frames, seed = generate[2]
    ids[text] = client.submit("generate", {"text": text, "frames": frames, "seed": seed, "steps": STEPS})
    ids["caption 2"] = client.submit("caption", {}, {"features": clip(25, 3)})
    for request_id in ids.values():
        queued(client, request_id)
    client.cancel(blocker)
    results = {name: final_of(client, request_id) for name, request_id in ids.items()}
    sizes = {name: event.fields["batch_size"] for name, event in results.items()}
    assert sizes == {name: 3 for name, *_ in generate} | {"caption 1": 2, "caption 2": 2, "predict": 1}
    for text, frames, seed in generate:  # batched, yet the same motion as alone, bit for bit (protocol.md)
        alone = inference.text_to_motion(oracle, [text], frames, seed, steps=STEPS)[0][0]
        np.testing.assert_array_equal(motions(results[text])[0], alone)
    captions = inference.motion_to_text(oracle, [clip(20, 1)])
    assert results["caption 1"].fields["caption"] == captions[0]


def test_cancelling_a_queued_job_answers_at_once_and_it_never_runs(client, gate):
    blocker = hold_worker(client)
    waiting = client.submit("generate", {"text": "never", "frames": 20, "steps": STEPS})
    queued(client, waiting)
    client.cancel(waiting)
    final = final_of(client, waiting)
    assert (final.type, final.fields["stage"]) == ("cancelled", "queued")
    gate.release()
    assert final_of(client, blocker).type == "result"  # the worker moves on ...
    after = client.request("generate", {"text": "next", "frames": 20, "steps": 2})
    assert after.type == "result"  # ... past where the cancelled job stood, which never ran:
    assert [(e.type, e.fields.get("stage")) for e in client.of(waiting)] == [("progress", "queued"), final_pair(final)]


def final_pair(event) -> tuple:
    return event.type, event.fields.get("stage")


def test_cancelling_a_running_job_stops_the_model(client, monkeypatch):
    steps_done: dict[str, int] = {}  # prompt -> diffusion steps the model has reported as done
    real = inference.text_to_motion

    def spy(model, texts, *args, control=inference.NO_CONTROL, **kwargs):
        def progress(stage: str, done: int, total: int) -> None:
            steps_done[texts[0]] = done
            control.progress(stage, done, total)

        watched = inference.TaskControl(progress, control.should_cancel)
        return real(model, texts, *args, control=watched, **kwargs)

    monkeypatch.setattr(server_tasks.inference, "text_to_motion", spy)
    # a real generation: 8 candidates x 1000 steps keeps the tiny model busy for seconds
    blocker = client.submit("generate", {"text": "a slow walk", "frames": 196, "candidates": 8, "steps": SLOW_STEPS})
    running(client, blocker)
    client.cancel(blocker)
    final = final_of(client, blocker)
    assert (final.type, final.fields["stage"]) == ("cancelled", "diffusion")
    at_cancel = steps_done["a slow walk"]
    assert 0 < at_cancel < SLOW_STEPS
    # the next job runs only when the worker is free: had the cancelled job gone on, its steps would show here
    after = client.request("generate", {"text": "quick", "frames": 20, "steps": 2})
    assert after.type == "result" and steps_done["quick"] == 2
    assert steps_done["a slow walk"] <= at_cancel + 1  # at most the one step in flight when the cancel came


def test_a_crash_in_one_job_fails_only_that_job(client, gate, monkeypatch):
    real = gate  # held requests first pass the gate

    def fragile(model, texts, *args, **kwargs):
        if any("explode" in text for text in texts):
            raise RuntimeError("boom")
        return real(model, texts, *args, **kwargs)

    monkeypatch.setattr(server_tasks.inference, "text_to_motion", fragile)
    blocker = hold_worker(client)
    ids = [
        client.submit("generate", {"text": text, "frames": 20, "steps": STEPS})
        for text in ("fine one", "please explode", "fine two")
    ]
    for request_id in ids:
        queued(client, request_id)
    client.cancel(blocker)
    finals = [final_of(client, request_id) for request_id in ids]
    assert [f.type for f in finals] == ["result", "error", "result"]
    assert finals[1].fields["code"] == "internal" and "boom" in finals[1].fields["message"]
    assert client.request("generate", {"text": "still serving", "frames": 20, "steps": 2}).type == "result"


def test_several_clients_get_their_own_results(server, oracle):
    requests = {  # client -> [(text, frames, seed)]
        0: [("a person walks", 20, 1), ("a person sits", 22, 2)],
        1: [("someone jumps", 21, 3), ("a person walks", 20, 4)],
        2: [("a man kicks", 23, 5)],
    }
    clients = [RecordingClient(server.address, heartbeat_s=0.2) for _ in requests]
    try:
        submitted = {
            index: [
                (client.submit("generate", {"text": t, "frames": n, "seed": s, "steps": STEPS}), (t, n, s))
                for t, n, s in requests[index]
            ]
            for index, client in enumerate(clients)
        }
        for index, client in enumerate(clients):
            for request_id, (text, frames, seed) in submitted[index]:
                event = final_of(client, request_id)
                alone = inference.text_to_motion(oracle, [text], frames, seed, steps=STEPS)[0][0]
                np.testing.assert_allclose(motions(event)[0], alone, atol=1e-4)
            own = {request_id for request_id, _ in submitted[index]}
            assert {e.request_id for e in client.history if e.request_id is not None} <= own
    finally:
        for client in clients:
            client.close()


def raw_exchange(address: str, identity: bytes, message: Message) -> list[Message]:
    """Send from a bare DEALER with a chosen identity; return the replies up to the final one (bounded wait)."""
    context = zmq.Context.instance()
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    socket.routing_id = identity
    socket.connect(address)
    try:
        socket.send_multipart(encode(message))
        replies = []
        while (not replies or replies[-1].type not in FINAL_REPLY_TYPES) and socket.poll(timeout=30_000):
            replies.append(decode_reply(socket.recv_multipart()))
        return replies
    finally:
        socket.close()


def test_request_ids_belong_to_their_client(server):
    message = Message("generate", "same-id", {"text": "walk", "frames": 20, "steps": 2})
    finals = {}
    for identity in (b"alice", b"bob"):
        replies = raw_exchange(server.address, identity, message)
        finals[identity] = [r for r in replies if r.type == "result"]
    assert all(len(found) == 1 and found[0].id == "same-id" for found in finals.values())


# ----------------------------------------------------------------------------------------------- lifecycle


def test_graceful_stop_tells_every_client(model, gate):
    server = Server(model, ServerConfig(bind=LOOPBACK_ANY_PORT))
    server.start()
    with connected_client(server.address, heartbeat_s=0.2) as busy, connected_client(server.address) as idle:
        assert idle.request("hello", {}).type == "info"
        active = hold_worker(busy)
        waiting = busy.submit("generate", {"text": "queued", "frames": 20, "steps": STEPS})
        queued(busy, waiting)
        server.stop()
        wait_for(busy, lambda e: e.type == "disconnected")
        events = busy.history
        finals = [e for e in events if e.final]
        assert sorted((e.request_id, e.type, e.fields["code"]) for e in finals) == sorted(
            [(active, "error", "shutting_down"), (waiting, "error", "shutting_down")]
        )
        assert "shutting down" in events[-1].fields["reason"]
        assert wait_for(idle, lambda e: e.type == "disconnected").fields["reason"] == "the server is shutting down"


def test_a_vanished_server_is_reported_within_the_timeout_and_the_client_reconnects(model, gate):
    first = Server(model, ServerConfig(bind=LOOPBACK_ANY_PORT))
    address = first.start()
    timeout_s = 1.0
    with connected_client(address, heartbeat_s=0.1, timeout_s=timeout_s) as client:
        job = hold_worker(client)
        first.stop(notify=False)  # like a crash: nobody is told
        gone = time.monotonic()
        wait_for(client, lambda e: e.type == "disconnected")
        noticed_after = time.monotonic() - gone
        assert [(e.request_id, e.fields["code"]) for e in client.history if e.final] == [(job, "disconnected")]
        assert noticed_after < timeout_s + 2.0  # the stated bound, with room for a loaded machine
        assert not client.connected
        assert final_of(client, client.submit("hello", {})).fields["code"] == "disconnected"  # fails fast
        second = Server(model, ServerConfig(bind=address))
        second.start()
        try:
            wait_for(client, lambda e: e.type == "reconnected")
            assert client.connected
            assert client.request("generate", {"text": "back", "frames": 20, "steps": 2}).type == "result"
        finally:
            second.stop()


def test_binds_to_loopback_by_default_and_refuses_other_addresses_without_keys(model):
    assert DEFAULT_ADDRESS == "tcp://127.0.0.1:5555"
    assert ServerConfig().bind == DEFAULT_ADDRESS and BrokerConfig().bind == DEFAULT_ADDRESS
    assert inspect.signature(MotionClient).parameters["address"].default == DEFAULT_ADDRESS
    for address in ("tcp://127.0.0.1:5555", "tcp://127.0.0.9:1", "tcp://localhost:5555", "tcp://[::1]:5555"):
        assert is_loopback(address), address
        check_bind(address, None)
    for address in (
        "tcp://0.0.0.0:5555",
        "tcp://*:5555",
        "tcp://192.168.1.20:5555",
        "tcp://[::]:5555",
        "tcp://eth0:5555",
        "tcp://example.com:5555",
    ):
        assert not is_loopback(address), address
        with pytest.raises(InsecureBindError, match="motiongpt3 keys"):
            check_bind(address, None)
    with pytest.raises(InsecureBindError):  # refused before anything is bound
        Server(model, ServerConfig(bind="tcp://0.0.0.0:5555")).start()
