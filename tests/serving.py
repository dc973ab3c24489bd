"""Helpers for the service tests: a tiny random-weight model, an in-process server on a free loopback port, and
bounded waits for client events (every loop has a deadline; nothing here listens beyond 127.0.0.1)."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from backend.model.config import tiny_config
from backend.model.loading import build_model
from backend.service.server import Server, ServerConfig
from backend.tasks import inference
from shared.client import Event, MotionClient

LOOPBACK_ANY_PORT = "tcp://127.0.0.1:*"
WAIT_S = 30.0  # generous bound for anything that should take milliseconds (a loaded 2-core CI machine)
SLOW_STEPS = 1000  # diffusion steps of a real job meant to still be running when the test acts on it
GATED_TEXT = "hold the worker"  # a generate request with this text runs until the gate opens or it is cancelled


def tiny_model():
    """The `tiny` preset with seeded random weights and a non-zero null condition (guidance matters)."""
    torch.manual_seed(0)
    model = build_model(tiny_config(), None, "random")
    with torch.no_grad():
        model.fake_latent.normal_()
    return model


@pytest.fixture(scope="module", name="model")
def model_fixture():
    """The tiny model, run on one torch thread (tiny tensors; two threads stall each other on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny_model()
    torch.set_num_threads(threads)


@pytest.fixture(name="gate")
def gate_fixture(monkeypatch):
    """A Gate installed in place of text_to_motion for the test (opened at the end)."""
    gate = Gate(inference.text_to_motion)
    monkeypatch.setattr(inference, "text_to_motion", gate)
    yield gate
    gate.release()


def oracle_copy(model):
    """An independent copy of the model for computing expected results while the server runs its own."""
    return copy.deepcopy(model)


@contextmanager
def running_server(model, **config) -> Iterator[Server]:
    """A started server on a free loopback port, stopped (gracefully) afterwards."""
    server = Server(model, ServerConfig(bind=LOOPBACK_ANY_PORT, **config))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RecordingClient(MotionClient):
    """A client that keeps every event poll() returned, so that waiting for one event loses no other."""

    def __init__(self, *args, **kwargs) -> None:
        self.history: list[Event] = []
        super().__init__(*args, **kwargs)

    def poll(self) -> list[Event]:
        events = super().poll()
        self.history.extend(events)
        return events

    def of(self, request_id: str) -> list[Event]:
        return [event for event in self.history if event.request_id == request_id]


@contextmanager
def connected_client(address: str, **options) -> Iterator[RecordingClient]:
    client = RecordingClient(address, **options)
    try:
        yield client
    finally:
        client.close()


def wait_for(
    client: RecordingClient, predicate: Callable[[Event], bool], timeout_s: float = WAIT_S, since: int = 0
) -> Event:
    """The first event in the client's history (from index `since`) that satisfies `predicate`, polling until it
    comes (AssertionError after timeout_s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        client.poll()
        for event in client.history[since:]:
            if predicate(event):
                return event
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching event within {timeout_s} s; seen {[e.type for e in client.history]}")
        time.sleep(0.001)


def final_of(client: RecordingClient, request_id: str, timeout_s: float = WAIT_S) -> Event:
    return wait_for(client, lambda e: e.request_id == request_id and e.final, timeout_s)


def running(client: RecordingClient, request_id: str) -> Event:
    """Wait until the request reports model progress (it is running, not queued)."""
    return wait_for(
        client, lambda e: e.request_id == request_id and e.type == "progress" and e.fields["stage"] != "queued"
    )


def queued(client: RecordingClient, request_id: str) -> Event:
    """Wait for the server's answer to a job submission (the `queued` progress event, or an error)."""
    return wait_for(client, lambda e: e.request_id == request_id and e.type in ("progress", "error"))


class Gate:
    """Wraps text_to_motion so that a request with GATED_TEXT holds the worker (reporting progress and honouring
    cancellation) until `release()`; every other request runs as usual."""

    def __init__(self, text_to_motion: Callable) -> None:
        self.real = text_to_motion
        self.opened = threading.Event()

    def __call__(self, model, texts, *args, control=inference.NO_CONTROL, **kwargs):
        if GATED_TEXT in texts:
            control.progress("diffusion", 0, 1)
            while not self.opened.wait(0.002):
                control.check("the gate")
        return self.real(model, texts, *args, control=control, **kwargs)

    def release(self) -> None:
        self.opened.set()


def clip(frames: int, seed: int = 0) -> np.ndarray:
    """A finite (frames, 263) float32 clip of plausible magnitude."""
    return (np.random.default_rng(seed).normal(size=(frames, 263)) * 0.5).astype(np.float32)
