"""An optional local backend (`motiongpt3 serve`) started from the preferences, logged to a file, stopped on exit."""

from __future__ import annotations

import atexit
import os
import shlex
import subprocess
import sys
import tempfile

from .backend_env import child_environment, popen_options


class LocalBackend:
    """One child process; its stdout/stderr go to `log_path`, whose tail the preferences show."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(tempfile.gettempdir(), f"motiongpt3_backend_{os.getpid()}.log")
        atexit.register(self.stop)

    @staticmethod
    def command(base: str | list[str], address: str, checkpoint: str, device: str) -> list[str]:
        """`base` (a command line, e.g. `motiongpt3` or `/env/bin/python -m backend.cli`, or the installed
        environment's [python, "-m", "backend.cli"]) + serve arguments."""
        prefix = list(base) if isinstance(base, list) else shlex.split(base or "motiongpt3")
        args = [*prefix, "serve", "--bind", address]
        if checkpoint:
            args += ["--checkpoint", checkpoint]
        if device and device != "auto":
            args += ["--device", device]
        return args

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, command: list[str]) -> None:
        if self.running:
            return
        with open(self.log_path, "wb") as log:
            log.write(("$ " + shlex.join(command) + "\n").encode())
            log.flush()
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_environment(os.environ),  # not Blender's PYTHONHOME / PYTHONPATH
                **popen_options(sys.platform),  # no console window on Windows
            )

    def stop(self, timeout_s: float = 3.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        self.process = None

    def log_tail(self, lines: int = 8) -> list[str]:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, os.path.getsize(self.log_path) - 4096))
                return log.read().decode(errors="replace").splitlines()[-lines:]
        except OSError:
            return []


LOCAL_BACKEND = LocalBackend()
