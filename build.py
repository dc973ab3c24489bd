#!/usr/bin/env python3
"""Developer tasks: set up the virtual environment, run the tests, run the demo job.

python3.11 build.py test    # create .venv, install everything (torch CPU-only without a GPU), ruff + pytest
python3.11 build.py demo    # create .venv, install the runtime, run the main job on a bundled clip
python3.11 build.py setup [--test]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
OUT = ROOT / "out"
DEMO_CLIP = ROOT / "backend" / "assets" / "samples" / "cmu_131_01_walk.bvh"


def run(*command: str | Path) -> None:
    """Run a command from the repo root, echoing it; stop the task on failure."""
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], cwd=ROOT, check=True)


def has_nvidia_gpu() -> bool:
    """True where an NVIDIA driver answers (then the default, CUDA-enabled torch build is wanted)."""
    smi = shutil.which("nvidia-smi")
    return smi is not None and subprocess.run([smi], capture_output=True).returncode == 0


def setup(with_tests: bool) -> None:
    """Create .venv and install the project (and test extras); skipped when nothing changed since last time."""
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"build.py needs Python 3.11 (the bpy wheels are cp311 only); this is {sys.version.split()[0]}")
    extras = "[test]" if with_tests else ""
    stamp_text = (ROOT / "pyproject.toml").read_bytes() + extras.encode() + str(has_nvidia_gpu()).encode()
    stamp = VENV / f".installed{extras}"
    digest = hashlib.sha256(stamp_text).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and PYTHON.exists():
        return
    if not PYTHON.exists():
        venv.create(VENV, with_pip=True)
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    if has_nvidia_gpu():
        run(PYTHON, "-m", "pip", "install", "--quiet", "torch>=2.4")
    else:
        # CPU-only build: this machine image's pip configuration provides the 2.13.0+cpu wheel; elsewhere
        # point PIP_EXTRA_INDEX_URL at PyTorch's CPU wheel index to avoid the multi-GB CUDA build.
        run(PYTHON, "-m", "pip", "install", "--quiet", "torch==2.13.0")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", f".{extras}")
    stamp.write_text(digest)


def test(pytest_args: list[str]) -> None:
    """Lint and run the whole test suite (real bpy included)."""
    setup(with_tests=True)
    run(PYTHON, "-m", "ruff", "check", ".")
    run(PYTHON, "-m", "pytest", *pytest_args)


def demo() -> None:
    """The main job until the model lands: encode a bundled CMU walk to 263-dim features and decode it to BVH."""
    setup(with_tests=False)
    OUT.mkdir(exist_ok=True)
    motiongpt3 = VENV / "bin" / "motiongpt3"
    run(motiongpt3, "encode", DEMO_CLIP, "-o", OUT / "walk_features.npy")
    run(motiongpt3, "decode", OUT / "walk_features.npy", "-o", OUT / "walk.bvh", "--fps", "30")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = parser.add_subparsers(dest="task", required=True)
    setup_parser = tasks.add_parser("setup", help="create .venv and install the project")
    setup_parser.add_argument("--test", action="store_true", help="also install the test extras (bpy, pytest)")
    test_parser = tasks.add_parser("test", help="set up, then ruff + pytest")
    test_parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra arguments for pytest")
    tasks.add_parser("demo", help="set up, then run the main job")
    args = parser.parse_args()
    try:
        if args.task == "setup":
            setup(with_tests=args.test)
        elif args.task == "test":
            test(args.pytest_args)
        else:
            demo()
    except subprocess.CalledProcessError as error:
        sys.exit(error.returncode)


if __name__ == "__main__":
    main()
