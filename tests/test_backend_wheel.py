"""The backend wheel (`build.py wheel`): what it holds, and that installed into a fresh virtual environment, with no
repository on the path, its `motiongpt3 generate` makes the motion the repository's backend makes.

The fresh environment gets the wheel with `pip install --no-deps`; its dependencies (torch, transformers, numpy, ...)
are this test environment's site-packages, appended to the fresh one's path by a .pth file (plain paths: the editable
install of the repository that lives there is not activated). Resolving and downloading the dependencies themselves
is what the add-on's installer does, tested in real Blender by tests/test_backend_install_blender_e2e.py."""

from __future__ import annotations

import hashlib
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from backend.cli import build_parser
from shared.motion.bvh import read_bvh

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a person walks forward, then turns left"


def test_wheel_holds_the_code_the_model_and_the_assets_but_no_data_clips(backend_wheel: Path) -> None:
    with zipfile.ZipFile(backend_wheel) as wheel:
        names = set(wheel.namelist())
        model = wheel.read("backend/assets/models/demo.safetensors")
        entry_points = wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    repo_files = {
        p.relative_to(ROOT).as_posix()
        for folder in ("backend", "shared")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    data_only = ("backend/assets/cmu/", "backend/assets/heldout/")  # training / evaluation clips: repository only
    repo_files = {n for n in repo_files if not n.startswith(data_only)}
    repo_files = {n for n in repo_files if "/assets/" in n or not n.endswith("README.md")}  # developer notes stay
    assert repo_files - names == set()  # every module, model, tokenizer file, template, bone map and statistic
    assert not [n for n in names if n.startswith(data_only)]
    assert (
        hashlib.sha256(model).digest()
        == hashlib.sha256((ROOT / "backend/assets/models/demo.safetensors").read_bytes()).digest()
    )
    assert "motiongpt3 = backend.cli:main" in entry_points
    assert not [n for n in names if n.startswith(("tests/", "blender_addon/"))]


@pytest.fixture(scope="module")
def fresh_env(backend_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            str(backend_wheel),
        ],
        check=True,
        capture_output=True,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv


def _clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def test_installed_backend_comes_from_the_wheel_not_the_repository(fresh_env: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [
            str(fresh_env / "bin" / "python"),
            "-c",
            "import backend, shared, sys; print(backend.__file__); print(shared.__file__); print('\\n'.join(sys.path))",
        ],
        cwd=tmp_path,
        env=_clean_environment(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert Path(where[0]).is_relative_to(fresh_env) and Path(where[1]).is_relative_to(fresh_env)
    assert str(ROOT) not in where[2:]


def test_motiongpt3_generate_from_the_wheel_matches_the_repository(fresh_env: Path, tmp_path: Path) -> None:
    arguments = ["generate", PROMPT, "--frames", "60", "--seed", "7", "--threads", "1", "--fps", "30"]
    outside = tmp_path / "somewhere_else"
    outside.mkdir()
    done = subprocess.run(
        [str(fresh_env / "bin" / "motiongpt3"), *arguments, "-o", str(outside / "walk")],
        cwd=outside,
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    reference = subprocess.run(
        [sys.executable, "-m", "backend.cli", *arguments, "-o", str(tmp_path / "repo" / "walk")],
        cwd=ROOT,
        env=_clean_environment() | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert reference.returncode == 0, reference.stderr[-2000:]
    installed = np.load(outside / "walk.npy")
    assert installed.shape == (60, 263) and np.isfinite(installed).all()
    np.testing.assert_allclose(installed, np.load(tmp_path / "repo" / "walk.npy"), atol=1e-5)
    clip = read_bvh(outside / "walk.bvh")
    # 60 frames at 20 fps span 2.95 s: 89 frames at 30 fps (frame 0 to 88).
    assert clip.frame_time == pytest.approx(1 / 30, rel=1e-6) and len(clip.motion) == 89
    assert (outside / "walk_preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_parser_is_the_installed_one(fresh_env: Path) -> None:
    done = subprocess.run(
        [str(fresh_env / "bin" / "motiongpt3"), "--help"], env=_clean_environment(), capture_output=True, text=True
    )
    commands = {c for c in ("generate", "caption", "predict", "inbetween", "serve") if c in done.stdout}
    assert done.returncode == 0 and commands == {"generate", "caption", "predict", "inbetween", "serve"}
    assert build_parser().parse_args(["serve"]).command == "serve"
