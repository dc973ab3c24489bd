"""`motiongpt3 serve | keys`: run the backend service (one process, or a broker with N worker processes) and make
CURVE keys for serving beyond this machine."""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

from backend.model.cpu_threads import available_cores
from shared.protocol import DEFAULT_ADDRESS

from .tasks import _model_options

WORKER_STOP_S = 10.0  # how long `serve --workers` waits for its workers after asking them to stop


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)


def _check_model_source(checkpoint: Path | None) -> None:
    """Fail before binding anything when there is no model to serve."""
    from backend.model.checkpoint import CheckpointError
    from backend.model.loading import EMBEDDED_MODEL

    if checkpoint is None and not EMBEDDED_MODEL.is_file():
        raise CheckpointError(
            f"the embedded demo model ({EMBEDDED_MODEL.name}) is not in this build; pass --checkpoint PATH"
        )
    if checkpoint is not None and not checkpoint.is_file():
        raise CheckpointError(f"--checkpoint {checkpoint}: no such file")


def _server_config(args: argparse.Namespace):
    from backend.service.server import ServerConfig

    return ServerConfig(
        bind=args.bind,
        keys_dir=args.keys,
        connect=args.connect,
        name=args.name,
        queue_size=args.queue_size,
        max_batch=args.max_batch,
        heartbeat_s=args.heartbeat,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the model until SIGINT / SIGTERM (then every client is told)."""
    from backend.service.security import check_bind

    for name in ("workers", "queue_size", "max_batch"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: must be at least 1")
    if not args.heartbeat > 0:
        raise ValueError("--heartbeat: must be positive")
    if args.connect is None:
        check_bind(args.bind, args.keys)
    _check_model_source(args.checkpoint)
    _setup_logging()
    if args.workers > 1:
        return _serve_with_workers(args)
    from backend import load_model
    from backend.model.cpu_threads import configure_threads
    from backend.service.server import Server

    configure_threads(args.threads)
    model = load_model(args.checkpoint, args.device)
    server = Server(model, _server_config(args))
    address = server.start()
    secure = "CURVE, keys from " + str(args.keys) if args.keys else "no encryption: this machine only"
    print(f"motiongpt3 serve: {model.config.name} model on {server.device}, listening on {address} ({secure})")
    sys.stdout.flush()
    server.serve_forever()
    return 0


def _worker_command(args: argparse.Namespace, backend: str, index: int, devices: list[str], threads: int) -> list[str]:
    command = [sys.executable, "-m", "backend.cli", "serve", "--connect", backend, "--name", f"worker-{index}"]
    command += ["--device", devices[index % len(devices)], "--threads", str(threads)]
    command += ["--queue-size", str(args.queue_size), "--max-batch", str(args.max_batch)]
    command += ["--heartbeat", str(args.heartbeat)]
    if args.checkpoint is not None:
        command += ["--checkpoint", str(args.checkpoint)]
    return command


def _worker_devices(device: str, workers: int) -> list[str]:
    """'auto' spreads the workers over the CUDA devices (one model per process); anything else is used as given."""
    if device != "auto":
        return [device]
    import torch

    count = torch.cuda.device_count()
    return [f"cuda:{i}" for i in range(count)] if count else ["cpu"]


def _serve_with_workers(args: argparse.Namespace) -> int:
    """A broker on --bind and N worker processes (each loads its own model) on a loopback backend."""
    from backend.model.loading import read_checkpoint_config
    from backend.service.broker import Broker, BrokerConfig

    config = BrokerConfig(
        bind=args.bind,
        keys_dir=args.keys,
        heartbeat_s=args.heartbeat,
        queue_size=args.queue_size,
        max_batch=args.max_batch,
    )
    broker = Broker(read_checkpoint_config(args.checkpoint), config)  # the model's limits and tokenizer, no weights
    address = broker.start()
    devices = _worker_devices(args.device, args.workers)
    threads = args.threads or max(1, available_cores() // args.workers)
    children = [
        subprocess.Popen(_worker_command(args, broker.backend_address, i, devices, threads))
        for i in range(args.workers)
    ]
    where = ", ".join(devices)
    print(f"motiongpt3 serve: listening on {address} (a broker; {args.workers} workers starting on {where})")
    sys.stdout.flush()
    stop = []
    previous = {
        sig: signal.signal(sig, lambda number, frame: stop.append(number)) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        while not stop and any(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in children:  # workers answer their own jobs through the broker, so it stops last
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WORKER_STOP_S
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def cmd_keys(args: argparse.Namespace) -> None:
    """Create the server key pair (once) and a key pair for one client."""
    from backend.service.security import create_keys

    files = create_keys(args.directory, args.client)
    print(f"server keys: {files.server_public} (public) and {files.server_secret} (secret: stays here)")
    print(f"client {args.client!r}: {files.client_public} (public: the server accepts it)")
    print(f"  give the client {files.client_secret} and {files.server_public}, then remove the secret from here")
    print(f"serve with: motiongpt3 serve --bind tcp://0.0.0.0:5555 --keys {args.directory}")


def add_server_commands(commands: argparse._SubParsersAction) -> None:
    """Register `serve` and `keys` on the `motiongpt3` parser."""
    serve = commands.add_parser("serve", help="run the backend service (ZeroMQ) for the Blender add-on and scripts")
    serve.add_argument("--bind", default=DEFAULT_ADDRESS, help=f"address to listen on (default {DEFAULT_ADDRESS})")
    serve.add_argument(
        "--keys",
        type=Path,
        default=None,
        help="CURVE key directory from `motiongpt3 keys` (required for any non-loopback --bind)",
    )
    _model_options(serve)
    serve.add_argument("--workers", type=int, default=1, help="worker processes behind one address (one model each)")
    serve.add_argument("--queue-size", type=int, default=32, help="jobs that may wait; one more gets `busy`")
    serve.add_argument("--max-batch", type=int, default=16, help="rows (prompts x candidates) per model call")
    serve.add_argument("--heartbeat", type=float, default=1.0, help="seconds between heartbeats")
    serve.add_argument("--connect", default=None, help=argparse.SUPPRESS)  # worker of a broker (used by --workers)
    serve.add_argument("--name", default=None, help=argparse.SUPPRESS)
    serve.set_defaults(run=cmd_serve)

    keys = commands.add_parser("keys", help="create CURVE keys for serving to other machines")
    keys.add_argument("directory", type=Path, help="key directory (server keys are made once, then reused)")
    keys.add_argument("--client", default="client", help="name of the client key pair to add (default: client)")
    keys.set_defaults(run=cmd_keys)
