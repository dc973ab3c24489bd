"""Several workers behind one address (in-process, 127.0.0.1): jobs spread over the workers, a cancel reaches the
worker that holds the job, a lost worker fails only its own jobs, the broker's stop tells the client."""

from __future__ import annotations

import time

import pytest
import torch
from serving import (
    GATED_TEXT,
    LOOPBACK_ANY_PORT,
    WAIT_S,
    connected_client,
    final_of,
    gate_fixture,  # noqa: F401  (pytest fixture "gate")
    running,
    tiny_model,
    wait_for,
)

from backend.model.config import tiny_config
from backend.service.broker import Broker, BrokerConfig
from backend.service.server import Server, ServerConfig

HEARTBEAT_S = 0.1


@pytest.fixture(scope="module")
def models():
    """Two workers, one model each (as one process each would have)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield [tiny_model(), tiny_model()]
    torch.set_num_threads(threads)


@pytest.fixture
def cluster(models):
    broker = Broker(tiny_config(), BrokerConfig(bind=LOOPBACK_ANY_PORT, heartbeat_s=HEARTBEAT_S, worker_timeout_s=1.0))
    broker.start()
    workers = [
        Server(model, ServerConfig(connect=broker.backend_address, name=f"w{i}", heartbeat_s=HEARTBEAT_S))
        for i, model in enumerate(models)
    ]
    for worker in workers:
        worker.start()
    yield broker, workers
    for worker in workers:
        if worker.running:
            worker.stop()
    broker.stop()


def wait_for_workers(client, count: int) -> dict:
    """The broker's info once it has `count` workers (they join, and are dropped, asynchronously)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        info = client.request("hello", {})
        if info.fields["workers"] == count:
            return info.fields
        time.sleep(0.02)
    raise AssertionError(f"never saw {count} workers")


def held(client, text: str = GATED_TEXT) -> str:
    request_id = client.submit("generate", {"text": text, "frames": 20, "steps": 2})
    running(client, request_id)
    return request_id


def test_jobs_spread_over_the_workers_and_a_cancel_reaches_the_one_holding_the_job(cluster, gate):
    broker, _ = cluster
    with connected_client(broker.address, heartbeat_s=HEARTBEAT_S) as client:
        info = wait_for_workers(client, 2)
        assert info["model"] == "tiny" and info["limits"]["max_frames"] == 196
        first, second = held(client), held(client)  # each worker now holds one job: the gate keeps both running
        assert sorted(len(worker.jobs) for worker in broker.workers.values()) == [1, 1]
        client.cancel(second)
        # only the worker holding `second` can end it before the gate opens
        assert (final_of(client, second).type, final_of(client, second).fields["stage"]) == ("cancelled", "diffusion")
        gate.release()
        result = final_of(client, first)
        assert result.type == "result"
        other = client.request("generate", {"text": "after", "frames": 20, "steps": 2})
        assert other.type == "result"
        workers_used = {result.fields["worker"], other.fields["worker"]}
        assert workers_used <= {"w0", "w1"}


def test_a_lost_worker_fails_only_its_jobs_and_the_others_serve_on(cluster, gate):
    broker, workers = cluster
    with connected_client(broker.address, heartbeat_s=HEARTBEAT_S) as client:
        wait_for_workers(client, 2)
        first, second = held(client), held(client)
        owner = {request_id: worker for worker in broker.workers.values() for _, request_id in worker.jobs}
        lost_name = owner[first].identity.decode()
        lost = next(w for w in workers if w.name == lost_name)
        lost.stop(notify=False)  # as if the process died
        failed = final_of(client, first)
        assert (failed.type, failed.fields["code"]) == ("error", "internal")
        assert "stopped answering" in failed.fields["message"]
        gate.release()
        assert final_of(client, second).type == "result"
        survivor = client.request("generate", {"text": "still here", "frames": 20, "steps": 2})
        assert survivor.type == "result" and survivor.fields["worker"] != lost_name
        assert wait_for_workers(client, 1)["workers"] == 1


def test_without_workers_jobs_are_unavailable_and_the_broker_stop_tells_the_client(models):
    broker = Broker(tiny_config(), BrokerConfig(bind=LOOPBACK_ANY_PORT, heartbeat_s=HEARTBEAT_S))
    broker.start()
    try:
        with connected_client(broker.address, heartbeat_s=HEARTBEAT_S) as client:
            assert client.request("hello", {}).fields["workers"] == 0
            refused = client.request("generate", {"text": "walk", "frames": 20})
            assert (refused.type, refused.fields["code"]) == ("error", "unavailable")
            invalid = client.request("generate", {"text": "walk", "frames": 500})  # the broker validates too
            assert (invalid.fields["code"], invalid.fields["field"]) == ("bad_request", "frames")
            broker.stop()
            assert (
                wait_for(client, lambda e: e.type == "disconnected").fields["reason"] == "the server is shutting down"
            )
    finally:
        broker.stop()
