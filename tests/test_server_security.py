"""CURVE on 127.0.0.1: keys from `motiongpt3 keys`, the right key accepted, a wrong or missing key refused."""

from __future__ import annotations

import stat

import pytest
import zmq.auth
from serving import (
    connected_client,
    model_fixture,  # noqa: F401  (pytest fixture "model")
    running_server,
    wait_for,
)

from backend.cli import main
from backend.service.security import check_bind
from shared.client import load_public_key


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    assert main(["keys", str(folder)]) == 0
    return folder


def test_keys_makes_a_server_pair_and_client_pairs_with_private_secrets(keys, capsys):
    server_public = load_public_key(keys / "server.key")
    assert main(["keys", str(keys), "--client", "laptop"]) == 0
    assert "laptop.key_secret" in capsys.readouterr().out
    assert load_public_key(keys / "server.key") == server_public  # the server pair is made once
    for secret in (keys / "server.key_secret", keys / "clients" / "laptop.key_secret"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        public, private = zmq.auth.load_certificate(str(secret))
        assert private is not None and len(public) == len(private) == 40
    assert {p.name for p in (keys / "clients").glob("*.key")} == {"client.key", "laptop.key"}
    assert main(["keys", str(keys), "--client", "laptop"]) == 2  # never overwrites a client's keys


def test_keys_allow_a_non_loopback_bind(keys, tmp_path):
    check_bind("tcp://0.0.0.0:5555", keys)  # checked only: nothing is bound here
    with pytest.raises(ValueError, match=r"server\.key_secret"):
        check_bind("tcp://0.0.0.0:5555", tmp_path)


def test_the_right_key_is_accepted_and_wrong_or_missing_keys_are_refused(model, keys, tmp_path):
    zmq.auth.create_certificates(tmp_path, "intruder")  # a valid key pair the server does not know
    server_key = load_public_key(keys / "server.key")
    client_secret = keys / "clients" / "client.key_secret"
    quick = {"heartbeat_s": 0.1, "timeout_s": 1.0}
    with running_server(model, keys_dir=keys) as server:
        with connected_client(server.address, server_public_key=server_key, client_secret_key_file=client_secret) as ok:
            assert ok.request("hello", {}).type == "info"
        handled = server.stats["messages"]
        refused_clients = {
            "unknown client key": {
                "server_public_key": server_key,
                "client_secret_key_file": tmp_path / "intruder.key_secret",
            },
            "wrong server key": {
                "server_public_key": load_public_key(tmp_path / "intruder.key"),
                "client_secret_key_file": client_secret,
            },
            "no keys": {},
        }
        for name, options in refused_clients.items():
            with connected_client(server.address, **options, **quick) as client:
                lost = wait_for(client, lambda e: e.type == "disconnected")
                assert not client.connected and client.server_info is None, name
                if name == "unknown client key":  # the server says so during the handshake
                    assert "refused" in lost.fields["reason"]
        assert server.stats["messages"] == handled  # not one message of theirs reached the server
