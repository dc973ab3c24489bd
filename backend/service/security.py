"""Safe network defaults: loopback unless CURVE keys are given, the key layout of `motiongpt3 keys`, ZAP auth.

Key directory (made by `motiongpt3 keys DIR`):

    DIR/server.key              the server's public key: give it to every client
    DIR/server.key_secret       the server's secret key: stays on the server
    DIR/clients/NAME.key        public keys of the clients the server accepts (one file per client)
    DIR/clients/NAME.key_secret a client's secret key: move it to that client's machine
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import zmq

from shared.protocol import DEFAULT_ADDRESS

__all__ = ["DEFAULT_ADDRESS", "InsecureBindError", "KeyFiles", "check_bind", "create_keys", "is_loopback"]


class InsecureBindError(ValueError):
    """A bind address that would expose the server without keys."""


@dataclass(frozen=True)
class KeyFiles:
    """Where `create_keys` put things."""

    server_public: Path
    server_secret: Path
    client_public: Path
    client_secret: Path


def is_loopback(address: str) -> bool:
    """True for tcp:// on a loopback address (127.0.0.0/8, ::1, localhost) and for ipc:// / inproc://.
    Wildcards (*, 0.0.0.0), interface names and other hosts are not loopback."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    if not address.startswith("tcp://"):
        return False
    host = address[len("tcp://") :].rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(address: str, keys_dir: str | Path | None) -> None:
    """Refuse a non-loopback bind without CURVE keys (before anything is bound)."""
    if keys_dir is None and not is_loopback(address):
        raise InsecureBindError(
            f"--bind {address}: serving beyond this machine needs CURVE keys; create them with "
            f"`motiongpt3 keys DIR` and pass --keys DIR (or bind tcp://127.0.0.1:PORT)"
        )
    if keys_dir is not None:
        server_keys(keys_dir)  # fail now on a missing or wrong key directory


def create_keys(directory: str | Path, client_name: str = "client") -> KeyFiles:
    """Create the server key pair (kept when it exists) and a key pair for one client; secrets are mode 0600."""
    import zmq.auth

    if not client_name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"client name {client_name!r}: use letters, digits, - and _")
    directory = Path(directory)
    clients = directory / "clients"
    clients.mkdir(parents=True, exist_ok=True)
    if not (directory / "server.key_secret").is_file():
        zmq.auth.create_certificates(directory, "server")
    if (clients / f"{client_name}.key").exists():
        raise FileExistsError(f"{clients / client_name}.key exists; choose another --client name")
    zmq.auth.create_certificates(clients, client_name)
    files = KeyFiles(
        directory / "server.key",
        directory / "server.key_secret",
        clients / f"{client_name}.key",
        clients / f"{client_name}.key_secret",
    )
    for secret in (files.server_secret, files.client_secret):
        os.chmod(secret, 0o600)
    return files


def server_keys(keys_dir: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) of the server from DIR/server.key_secret; ValueError naming what is missing."""
    import zmq.auth

    path = Path(keys_dir) / "server.key_secret"
    if not path.is_file():
        raise ValueError(f"--keys {keys_dir}: no server.key_secret there (create keys with `motiongpt3 keys DIR`)")
    public, secret = zmq.auth.load_certificate(str(path))
    if not secret:
        raise ValueError(f"{path}: not a secret key file")
    if not sorted((Path(keys_dir) / "clients").glob("*.key")):
        raise ValueError(f"--keys {keys_dir}: no client public keys in clients/ (every client would be refused)")
    return public, secret


def secure_server_socket(context: zmq.Context, socket: zmq.Socket, keys_dir: str | Path) -> object:
    """Make `socket` a CURVE server that accepts only the public keys in DIR/clients; returns the running
    authenticator (stop it when the socket is closed)."""
    from zmq.auth.thread import ThreadAuthenticator

    public, secret = server_keys(keys_dir)
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(Path(keys_dir) / "clients"))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return authenticator
