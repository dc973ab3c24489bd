"""`motiongpt3 serve` as a real process on 127.0.0.1: killed mid-job, the client reports it within its timeout and
recovers when the server returns; SIGTERM tells the client; clear refusals before anything is bound."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from serving import SLOW_STEPS, connected_client, final_of, running, wait_for

from backend.cli import main
from backend.service.spawn import spawn_server


def serve(checkpoint: Path, bind: str = "tcp://127.0.0.1:*"):
    return spawn_server(["--bind", bind, "--checkpoint", str(checkpoint), "--device", "cpu", "--threads", "1"])


def long_job(client) -> str:
    return client.submit("generate", {"text": "a long dance", "frames": 196, "candidates": 8, "steps": SLOW_STEPS})


def test_a_killed_server_is_reported_and_the_client_recovers_when_it_returns(tiny_checkpoint):
    first, address = serve(tiny_checkpoint)
    timeout_s = 4.0  # a loaded machine can starve the server for a second or two; that is not death
    second = None
    try:
        with connected_client(address, heartbeat_s=0.2, timeout_s=timeout_s) as client:
            assert client.request("hello", {}).fields["model"] == "tiny"
            job = long_job(client)
            running(client, job)
            first.kill()  # SIGKILL: no goodbye
            killed = time.monotonic()
            wait_for(client, lambda e: e.type == "disconnected")
            assert time.monotonic() - killed < timeout_s + 4.0  # the stated bound, with room for a loaded machine
            assert (final_of(client, job).type, final_of(client, job).fields["code"]) == ("error", "disconnected")

            second, _ = serve(tiny_checkpoint, bind=address)
            wait_for(client, lambda e: e.type == "reconnected")
            result = client.request("generate", {"text": "back again", "frames": 20, "steps": 2})
            assert result.type == "result" and result.arrays["motions"].shape == (1, 20, 263)

            job = long_job(client)
            running(client, job)
            since = len(client.history)
            second.send_signal(signal.SIGTERM)  # graceful: the job and then the client are told
            goodbye = wait_for(client, lambda e: e.type == "disconnected", since=since)
            assert final_of(client, job).fields["code"] == "shutting_down"
            assert "shutting down" in goodbye.fields["reason"]
            assert second.wait(timeout=30) == 0
    finally:
        for child in (first, second):
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()


def test_serve_refuses_a_public_address_without_keys(tiny_checkpoint, capsys):
    assert main(["serve", "--bind", "tcp://0.0.0.0:5555", "--checkpoint", str(tiny_checkpoint)]) == 2
    assert "motiongpt3 keys" in capsys.readouterr().err


def test_serve_without_a_model_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("backend.model.loading.EMBEDDED_MODEL", tmp_path / "demo.safetensors")  # not built
    assert main(["serve"]) == 2
    error = capsys.readouterr().err
    assert "demo model" in error and "--checkpoint" in error
    assert main(["serve", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_serve_with_workers_refuses_like_a_server_and_its_info_has_every_documented_field(tiny_checkpoint):
    """`serve --workers 2` (a broker and two worker processes): from its first moment the broker's info has the
    documented fields and the model's limits, and it refuses a text over max_text_tokens before any job is
    acknowledged, workers ready or not; then its workers serve."""
    from protocol_spec import read_spec

    child, address = spawn_server(
        ["--bind", "tcp://127.0.0.1:*", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--workers", "2"]
    )
    try:
        with connected_client(address, timeout_s=20.0) as client:
            info = client.request("hello", {}).fields
            documented = [row.name for row in read_spec().reply_fields if row.reply == "info"]
            assert sorted(info) == sorted(documented) and info["model"] == "tiny"
            assert info["limits"]["max_text_tokens"] == 182 and info["parameters"] > 0
            too_long = client.request("generate", {"text": "🦘" * 64, "frames": 20})  # 64 characters, 192 tokens
            assert (too_long.fields["code"], too_long.fields["field"]) == ("bad_request", "text")
            assert "the limit is 182" in too_long.fields["message"]
            deadline = time.monotonic() + 120
            while client.request("hello", {}).fields["workers"] < 2:
                assert time.monotonic() < deadline, "the workers never became ready"
                time.sleep(0.2)
            result = client.request("generate", {"text": "a person walks", "frames": 20, "steps": 2})
            assert result.type == "result" and result.arrays["motions"].shape == (1, 20, 263)
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
