"""From the add-on zip to a generated Action without a terminal, in real Blender (bpy): the zip installed as an
extension, Install Local Backend pressed (torch as this machine's pip is configured), Start, Generate; an Update
cancelled half-way keeps the installed backend; a second Blender of another version finds the same environment,
starts it, and removes it. Measures the install's time and size (printed with -s / in the report on failure).

The torch requirement is pinned to the version this test environment has (here the CPU build that the machine's pip
configuration offers from local disk), so that pip does not pick a newer, multi-GB CUDA build from PyPI."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("bpy")  # Blender as a module (the test environment's; the backend gets an environment of its own)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "blender_backend_install_check.py"


def _build_script():
    spec = importlib.util.spec_from_file_location("build_script", ROOT / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _torch_requirement() -> str:
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("pins torch to this environment's version, and this environment has no torch")
    return f"torch=={version.split('+')[0]}"


def _run(python: str, args: list[str], environ: dict[str, str], timeout_s: float) -> dict:
    done = subprocess.run([python, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout_s, env=environ)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads(lines[-1][len("REPORT ") :])
    assert "exception" not in report, report["exception"] + json.dumps(report, indent=1)[-4000:]
    return report


def _second_blender() -> str:
    """Another Blender version's environment that `build.py test` set up (4.2 LTS first), else this one."""
    for env in _build_script().BLENDER_ENVS:
        if env.interpreter.exists() and Path(sys.prefix).resolve() != env.venv.resolve():
            return str(env.interpreter)
    return sys.executable


def test_from_the_zip_to_an_action_without_a_terminal(tmp_path: Path) -> None:
    requirement = _torch_requirement()
    addon_zip = _build_script().build_addon()
    environ = dict(os.environ)
    for kind in ("CONFIG", "SCRIPTS", "EXTENSIONS"):
        environ[f"BLENDER_USER_{kind}"] = str(tmp_path / "blender" / kind.lower())
    environ["MOTIONGPT3_BACKEND_HOME"] = str(tmp_path / "home")
    out = tmp_path / "out"
    out.mkdir()

    first = _run(sys.executable, ["install", str(addon_zip), requirement, _free_port(), str(out)], environ, 1500)
    print(json.dumps({k: first[k] for k in ("install_seconds", "install_message", "marker")}, indent=1))
    assert first["extension_install"] == ["FINISHED"]
    assert first["wheel"].endswith(".whl") and "/extensions/" in first["wheel"]  # the zip's own backend wheel
    assert first["root"] == str(tmp_path / "home")
    assert "offline" in first["offline"] and not first["offline_root_exists"]  # refused; nothing made
    assert first["install_state"] == "done", first["install_log"]
    assert first["progress_monotonic"] and not first["timer_left"]
    marker = first["marker"]
    assert marker["backend"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert marker["torch"].startswith(requirement.split("==")[1]) and marker["variant"] == "cpu"
    assert marker["wheel"] == Path(first["wheel"]).name and marker["size_bytes"] > 200e6
    assert Path(first["env_python"]).is_relative_to(tmp_path / "home" / "env")
    # Start ran the environment's own backend, and the panel has model and device.
    assert first["start_command"][:3] == [first["env_python"], "-m", "backend.cli"]
    assert first["start_state"] == "connected" and first["start_label"] == "demo · cpu"
    # Generate wrote an Action whose pelvis follows the served motion, which is the installed CLI's motion.
    assert first["job"][0] == "done", first["job"]
    assert first["action"].startswith("a person walks forward") and first["action_range"] == [1.0, 40.0]
    assert first["pelvis_error_m"] < 1e-4 and first["pelvis_travel_m"] > 0.3
    assert first["cli_returncode"] == 0, first.get("cli_error")
    assert first["cli_difference"] < 1e-3 * first["motion_range"]
    # Update cancelled while pip installed torch: the backend stopped for it, and the installed one is unchanged.
    assert first["update_stopped_backend"]
    assert first["update_cancel_message"] == "Cancelled: the installed backend is unchanged"
    assert first["update_cancel_kept"] and first["kept_env_runs"] and first["cleanup_done"]
    assert first["root_after_cancel"] == ["env", "install.log"]

    second = _run(_second_blender(), ["reuse", str(addon_zip), _free_port()], environ, 600)
    assert second["legacy_install"] == ["FINISHED"] and second["found"]
    assert second["env_python"] == first["env_python"] and second["marker"] == marker
    assert second["start_command"][0] == first["env_python"]
    assert second["start_state"] == "connected" and second["start_label"] == "demo · cpu"
    assert second["removed"] and second["cleanup_done"] and second["root_after_remove"] == ["install.log"]
