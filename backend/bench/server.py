"""`motiongpt3 bench server`: the service on loopback, measured from clients in this process against a server in
another (so that neither side's Python slows the other): payload round-trip latency, cancellation latency,
requests/s for 1 and N concurrent clients, and a memory soak."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from shared.client import Event, MotionClient

LATENCY_GOAL_MS = 1.0
CANCEL_GOAL_MS = 100.0


@contextmanager
def served_model(checkpoint: Path | None, device: str) -> Iterator[tuple[str, str]]:
    """A `motiongpt3 serve` child on a free loopback port -> (address, note on the model). Without the embedded
    demo model, serves random weights of the demo preset (same sizes, same speed)."""
    from backend.model.loading import EMBEDDED_MODEL
    from backend.service.spawn import spawn_server

    with tempfile.TemporaryDirectory() as folder:
        note = str(checkpoint) if checkpoint is not None else "embedded demo model"
        if checkpoint is None and not EMBEDDED_MODEL.is_file():
            checkpoint = _random_demo_checkpoint(Path(folder))
            note = "demo preset with random weights (the embedded demo model is not built yet)"
        arguments = ["--bind", "tcp://127.0.0.1:*", "--device", device]
        child, address = spawn_server(arguments + ([] if checkpoint is None else ["--checkpoint", str(checkpoint)]))
        try:
            yield address, note
        finally:
            child.terminate()
            child.wait(timeout=30)


def _random_demo_checkpoint(folder: Path) -> Path:
    import torch

    from backend.model.checkpoint import save_safetensors
    from backend.model.config import demo_config
    from backend.model.loading import build_model

    torch.manual_seed(0)
    model = build_model(demo_config(), None, "random")
    path = folder / "demo_random.safetensors"
    save_safetensors(model, model.config, path)
    return path


def _wait_final(client: MotionClient, request_id: str, on_event: Callable[[Event], None] | None = None) -> Event:
    while True:
        for event in client.poll():
            if on_event is not None:
                on_event(event)
            if event.request_id == request_id and event.final:
                return event
        time.sleep(0.0005)


def round_trip_ms(client: MotionClient, frames: int, repeats: int) -> np.ndarray:
    """Milliseconds per `echo` of a (frames, 263) float32 payload (encode, send, validate, return, decode)."""
    payload = {"features": np.random.default_rng(0).normal(size=(frames, 263)).astype(np.float32)}
    times = []
    for index in range(repeats + 20):
        start = time.perf_counter()
        event = client.request("echo", {}, payload)
        elapsed = time.perf_counter() - start
        if event.type != "echo" or not np.array_equal(event.arrays["features"], payload["features"]):
            raise RuntimeError(f"echo came back wrong: {event.type} {event.fields}")
        if index >= 20:  # warm-up
            times.append(elapsed * 1000.0)
    return np.array(times)


def cancel_ms(client: MotionClient, repeats: int) -> np.ndarray:
    """Milliseconds from cancel() of a running generation to its `cancelled` event."""
    times = []
    for _ in range(repeats):
        request_id = client.submit("generate", {"text": "a person walks in a circle", "frames": 196, "steps": 1000})
        started: list[float] = []

        def on_event(event: Event, request_id: str = request_id, started: list[float] = started) -> None:
            if event.request_id == request_id and event.type == "progress" and event.fields["stage"] == "diffusion":
                if not started:
                    client.cancel(request_id)
                    started.append(time.perf_counter())

        final = _wait_final(client, request_id, on_event)
        if final.type == "cancelled" and started:
            times.append((time.perf_counter() - started[0]) * 1000.0)
    return np.array(times)


def throughput(clients: list[MotionClient], total: int, make_request: Callable[[int], tuple]) -> tuple[float, float]:
    """(requests/s, mean batch size) with every client keeping one request in flight until `total` are done."""
    in_flight: dict[int, str] = {}
    sent = done = 0
    batch_sizes = []
    start = time.perf_counter()
    while done < total:
        for index, client in enumerate(clients):
            if index not in in_flight and sent < total:
                in_flight[index] = client.submit(*make_request(sent))
                sent += 1
            for event in client.poll():
                if event.final and event.request_id == in_flight.get(index):
                    if event.type != "result":
                        raise RuntimeError(f"request failed: {event.fields}")
                    batch_sizes.append(event.fields["batch_size"])
                    del in_flight[index]
                    done += 1
        time.sleep(0.0005)
    return total / (time.perf_counter() - start), float(np.mean(batch_sizes))


SOAK_SHAPES = 10  # lengths each kind of job cycles through


def _soak_request(index: int, clip: np.ndarray, known: np.ndarray) -> tuple:
    """Every kind of job in turn, each cycling through SOAK_SHAPES lengths, at a few diffusion steps (the soak is
    about memory, not speed). Shape-keyed caches fill during the warm-up; after it, growth would be a leak."""
    kind, size = index % 4, (index // 4) % SOAK_SHAPES
    if kind == 0:
        return "generate", {"text": f"a person walks {size + 1} steps", "frames": 40 + 10 * size, "steps": 10}
    if kind == 1:
        return "caption", {}, {"features": clip[: 20 + 15 * size]}
    if kind == 2:
        return "predict", {"frames": 30, "steps": 10, "seed": index}, {"features": clip[: 20 + 5 * size]}
    return "inbetween", {"steps": 10, "seed": index}, {"features": clip[:80], "known": known}


def run_server_benchmark(
    checkpoint: Path | None = None, device: str = "auto", frames: int = 196, soak: int = 1000, clients: int = 8
) -> None:
    """Print the server benchmark."""
    with served_model(checkpoint, device) as (address, note):
        pool = [MotionClient(address, timeout_s=30.0) for _ in range(max(clients, 1))]
        try:
            info = pool[0].request("hello", {})
            print(f"server {address}: {info.fields['model']} on {info.fields['device']} ({note})")
            latency = round_trip_ms(pool[0], frames, 1000)
            print(
                f"round trip of a {frames}x263 float32 payload (echo, 1000 runs): median {np.median(latency):.3f} ms, "
                f"p99 {np.percentile(latency, 99):.3f} ms (goal <= {LATENCY_GOAL_MS:g} ms)"
            )
            cancels = cancel_ms(pool[0], 20)
            print(
                f"cancel of a running generation -> cancelled event: median {np.median(cancels):.1f} ms, "
                f"max {cancels.max():.1f} ms over {len(cancels)} (goal <= {CANCEL_GOAL_MS:g} ms)"
            )

            def generate(index: int) -> tuple:
                return "generate", {"text": "a person walks forward and waves", "frames": frames, "seed": index}

            for count in sorted({1, clients}):
                total = 8 if count == 1 else 4 * count
                rate, batch = throughput(pool[:count], total, generate)
                print(
                    f"generate {frames} frames, default steps, {count} client(s): {rate:.2f} requests/s "
                    f"({total} requests, mean batch {batch:.1f})"
                )
            clip = np.random.default_rng(1).normal(size=(196, 263)).astype(np.float32) * 0.1
            known = np.zeros(80, dtype=bool)
            known[:20] = known[60:] = True
            mixed = lambda i: _soak_request(i, clip, known)  # noqa: E731
            throughput(pool, 2 * 4 * SOAK_SHAPES, mixed)  # warm-up: every kind and length of job twice
            rss = [_server_rss(pool[0])]
            started = time.perf_counter()
            for part in range(4):
                throughput(pool, soak // 4 + (part < soak % 4), mixed)
                rss.append(_server_rss(pool[0]))
            print(
                f"soak: {soak} mixed requests after warm-up (generate/caption/predict/inbetween, {len(pool)} clients, "
                f"{soak / (time.perf_counter() - started):.1f} requests/s): server memory {_mib(rss[0])} at start, "
                f"{_mib(rss[-1])} at end (every quarter: {', '.join(_mib(r) for r in rss)})"
            )
        finally:
            for client in pool:
                client.close()


def _server_rss(client: MotionClient) -> int | None:
    return client.request("hello", {}).fields["stats"]["rss_bytes"]


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f} MiB"
