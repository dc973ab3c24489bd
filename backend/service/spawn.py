"""Start `motiongpt3 serve` in a child process and wait for the address it listens on (benchmarks, tests)."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time


def spawn_server(arguments: list[str], timeout_s: float = 120.0) -> tuple[subprocess.Popen, str]:
    """Start `motiongpt3 serve ARGUMENTS` in a child process; returns it and the address it printed (use
    `--bind tcp://127.0.0.1:*` for a free port). RuntimeError with its output when it does not come up in time."""
    command = [sys.executable, "-m", "backend.cli", "serve", *arguments]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in child.stdout], daemon=True).start()
    deadline = time.monotonic() + timeout_s
    output = []
    while (remaining := deadline - time.monotonic()) > 0 and (child.poll() is None or not lines.empty()):
        try:
            output.append(lines.get(timeout=min(remaining, 0.5)))
        except queue.Empty:
            continue
        if match := re.search(r"listening on (\S+)", output[-1]):
            return child, match.group(1)
    child.kill()
    child.wait()
    raise RuntimeError(f"`{' '.join(command)}` did not start:\n{''.join(output)}")
