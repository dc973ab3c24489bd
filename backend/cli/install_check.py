"""`python -m backend.cli.install_check`: prove an installed backend environment works and describe it (one tagged
JSON line the add-on's installer reads as its last step)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys

TAG = "MOTIONGPT3_VERIFY"  # the add-on's installer looks for this tag (blender_addon/backend_install.py)


def environment_size_bytes(prefix: str) -> int:
    """Bytes of the regular files under `prefix` (links not followed or counted)."""
    size = 0
    for folder, _, files in os.walk(prefix):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                size += os.path.getsize(path)
    return size


def main() -> None:
    import torch

    import backend.cli  # noqa: F401  (the command's own imports must work here)

    report = {
        "backend": importlib.metadata.version("motiongpt3-blender"),
        "torch": torch.__version__,
        "cuda": bool(torch.cuda.is_available()),
        "python": ".".join(map(str, sys.version_info[:3])),
        "size_bytes": environment_size_bytes(sys.prefix),
    }
    print(f"{TAG} {json.dumps(report)}")


if __name__ == "__main__":
    main()
