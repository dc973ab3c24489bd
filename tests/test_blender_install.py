"""Install Local Backend through the add-on's operators in real Blender (every bpy the tests run on): the shared
environment folder, offline refusal that changes nothing, Cancel mid-install leaving nothing, typed failures
reported, Start refused without a backend and running the installed one, Remove. (The whole path with torch, Start
and Generate: tests/test_backend_install_blender_e2e.py.)"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import bpy
import pytest

from blender_addon import backend_env, install_ops
from blender_addon.local_backend import LOCAL_BACKEND

pytestmark = pytest.mark.usefixtures("addon")


@pytest.fixture
def prefs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The add-on's preferences (an Addon entry as addon_utils.enable makes one), its environment folder in tmp_path,
    pip pointed at a closed loopback port (nothing is downloaded), online access on; all restored afterwards."""
    addons = bpy.context.preferences.addons
    entry = addons.get("blender_addon")
    made = entry is None
    if made:
        entry = addons.new()
        entry.module = "blender_addon"
    preferences = entry.preferences
    preferences.env_folder = str(tmp_path / "home")
    preferences.env_python, preferences.torch_source = "", "pip"
    for name in [n for n in os.environ if n.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:1/simple")
    monkeypatch.delenv(backend_env.ROOT_ENV_VAR, raising=False)
    system = bpy.context.preferences.system
    online = system.use_online_access
    system.use_online_access = True
    install_ops.INSTALLER.state, install_ops.INSTALLER.message, install_ops.INSTALLER.error = "idle", "", None
    install_ops._status_cache.clear()
    yield preferences
    install_ops.INSTALLER.shutdown()
    install_ops.stop_install_timer()
    install_ops.INSTALLER.wait_for_cleanup()
    LOCAL_BACKEND.stop()
    system.use_online_access = online
    if made:
        addons.remove(entry)


@pytest.fixture
def carried_wheel(backend_wheel: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The add-on finds the backend wheel where the zip keeps it (here: the one the test session built)."""
    monkeypatch.setattr(install_ops, "WHEEL_FOLDERS", [str(backend_wheel.parent)])
    return backend_wheel


def _fake_installed_env(root: Path) -> Path:
    """A complete-looking environment: marker, pyvenv.cfg naming this Python, bin/python (the renames and checks
    look at these; nothing here runs it)."""
    env_dir = root / "env"
    (env_dir / "bin").mkdir(parents=True)
    (env_dir / "pyvenv.cfg").write_text(f"home = {Path(sys.executable).parent}\n")
    (env_dir / "bin" / "python").symlink_to(sys.executable)
    backend_env.write_marker(str(env_dir), {"backend": "0.1.0", "torch": "2.13.0+cpu", "variant": "cpu"})
    return env_dir


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_default_folder_is_shared_by_every_blender_version(prefs) -> None:
    prefs.env_folder = ""
    user = bpy.utils.resource_path("USER")
    assert Path(user).name == "{}.{}".format(*bpy.app.version[:2])  # per version: its parent is common to all
    assert install_ops.env_root(prefs) == os.path.join(os.path.dirname(user), "motiongpt3")
    assert install_ops.current_status(prefs, max_age_s=0).installed is False  # looking creates nothing


def test_offline_refuses_and_changes_nothing(prefs, carried_wheel: Path, tmp_path: Path) -> None:
    bpy.context.preferences.system.use_online_access = False
    assert not bpy.app.online_access
    with pytest.raises(RuntimeError, match="Blender is offline"):
        bpy.ops.motion.install_backend()
    assert not (tmp_path / "home").exists()
    assert "Allow Online Access" in install_ops.INSTALLER.message and install_ops.INSTALLER.error.kind == "offline"
    _fake_installed_env(tmp_path / "home")
    before = _digest(tmp_path / "home")
    with pytest.raises(RuntimeError, match="Blender is offline"):
        bpy.ops.motion.update_backend()
    assert _digest(tmp_path / "home") == before and not install_ops.INSTALLER.running
    assert not bpy.app.timers.is_registered(install_ops.install_tick)


def test_cancel_mid_install_leaves_nothing(prefs, carried_wheel: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert bpy.ops.motion.install_backend() == {"FINISHED"}  # execute: what the confirmation dialog runs
    assert bpy.app.timers.is_registered(install_ops.install_tick)
    deadline = time.monotonic() + 120
    while not (install_ops.INSTALLER.step == "venv" and (home / "env" / "bin").is_dir()):
        assert install_ops.INSTALLER.running and time.monotonic() < deadline, install_ops.INSTALLER.log_tail()
        assert install_ops.install_tick() == install_ops.TICK_S
        time.sleep(0.02)
    text, progress = install_ops.INSTALLER.summary()
    assert text == "Creating the environment" and 0 < progress < 0.1
    assert bpy.ops.motion.cancel_install() == {"FINISHED"}
    assert install_ops.install_tick() is None  # the timer ends itself
    assert install_ops.INSTALLER.message == "Cancelled: nothing was installed"
    assert install_ops.INSTALLER.wait_for_cleanup()
    assert sorted(p.name for p in home.iterdir()) == ["install.log"]
    assert not install_ops.current_status(prefs, max_age_s=0).installed


def test_a_python_that_does_not_run_is_reported(prefs, carried_wheel: Path, tmp_path: Path) -> None:
    prefs.env_python = str(tmp_path / "nowhere" / "python3.11")
    with pytest.raises(RuntimeError, match="Set Python for the Backend"):
        bpy.ops.motion.install_backend()
    assert install_ops.INSTALLER.state == "failed" and install_ops.INSTALLER.error.kind == "no_python"
    assert not (tmp_path / "home" / "env").exists()


def test_update_needs_an_installed_backend(prefs, carried_wheel: Path) -> None:
    with pytest.raises(RuntimeError, match="nothing to update"):
        bpy.ops.motion.update_backend()


def test_start_refused_without_a_backend_and_runs_the_installed_one(prefs, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="press Install Local Backend first"):
        bpy.ops.motion.start_backend()
    assert not LOCAL_BACKEND.running
    env_dir = _fake_installed_env(tmp_path / "home")
    prefs.address = "tcp://127.0.0.1:5611"
    command = install_ops.local_backend_command(prefs)
    assert command == [str(env_dir / "bin" / "python"), "-m", "backend.cli", "serve", "--bind", "tcp://127.0.0.1:5611"]
    prefs.backend_source, prefs.command = "COMMAND", "/opt/mgpt/bin/motiongpt3"
    assert install_ops.local_backend_command(prefs)[:2] == ["/opt/mgpt/bin/motiongpt3", "serve"]


def test_remove_deletes_the_environment(prefs, tmp_path: Path) -> None:
    _fake_installed_env(tmp_path / "home")
    assert install_ops.current_status(prefs, max_age_s=0).installed
    assert bpy.ops.motion.remove_backend() == {"FINISHED"}
    assert install_ops.INSTALLER.wait_for_cleanup() and list((tmp_path / "home").iterdir()) == []
    with pytest.raises(RuntimeError, match="no backend is installed"):
        bpy.ops.motion.remove_backend()
