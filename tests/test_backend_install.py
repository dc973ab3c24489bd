"""Install Local Backend without Blender: platform decisions and commands (Linux, Windows, macOS), pip's real output
(progress, failures), and the installer's state machine with real child processes: refusals change nothing, Cancel
ends every process and leaves nothing half-installed, an update that does not finish keeps the installed backend,
and a failure has a typed error (no Python, no network, a full disk)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blender_addon import backend_env as env
from blender_addon.backend_env import InstallError, TorchPlan
from blender_addon.backend_install import (
    STEPS,
    Installer,
    InstallRequest,
    PipProgress,
    classify_failure,
    pip_version,
)

PIP_OUTPUT = Path(__file__).resolve().parent / "data" / "pip"


def _closed_index_environment() -> dict[str, str]:
    """This process's environment with pip pointed at a closed loopback port and no configuration or local wheels:
    every download fails at once, as it does on a machine without network."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    environ |= {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:1/simple"}
    environ |= {"PIP_RETRIES": "1", "PIP_TIMEOUT": "2"}
    return environ


def _request(root: Path, wheel: Path | str, **overrides) -> InstallRequest:
    values = dict(root=str(root), python=sys.executable, wheel=str(wheel), torch_source="pip")
    values |= dict(environ=_closed_index_environment(), blender="test")
    return InstallRequest(**(values | overrides))


def _drive(installer: Installer, until, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, (installer.state, installer.step, installer.log_tail(10))
        installer.poll()
        time.sleep(0.02)


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _fake_installed_env(root: Path) -> Path:
    """A root whose env/ holds a marker, a pyvenv.cfg naming this machine's Python and one more file: what the
    installer's decisions and renames look at (the environment's content is not theirs to read)."""
    env_dir = root / env.ENV_DIR
    (env_dir / "bin").mkdir(parents=True)
    (env_dir / "pyvenv.cfg").write_text(f"home = {Path(sys.executable).parent}\n")
    (env_dir / "bin" / "python").symlink_to(sys.executable)
    (env_dir / "payload.txt").write_text("the installed backend\n")
    env.write_marker(str(env_dir), {"backend": "0.0.9", "torch": "2.13.0+cpu", "variant": "cpu"})
    return env_dir


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


# -- paths and platforms --------------------------------------------------------------------------------------------


def test_env_python_is_where_venv_puts_it(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "env")], check=True)
    python = env.env_python(str(tmp_path / "env"), sys.platform)
    done = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True)
    assert Path(done.stdout.strip()) == tmp_path / "env"
    # Windows' venv layout (CPython's venv module: Scripts\python.exe); macOS is POSIX's bin/python.
    assert env.env_python("E", "win32") == os.path.join("E", "Scripts", "python.exe")
    assert env.env_python("E", "darwin") == os.path.join("E", "bin", "python")


def test_default_root_is_shared_by_every_blender_version() -> None:
    roots = {env.default_root(f"/home/ann/.config/blender/{v}", environ={}) for v in ("4.2", "4.5", "5.0", "5.2")}
    assert roots == {"/home/ann/.config/blender/motiongpt3"}
    assert env.default_root("/x/4.2", environ={env.ROOT_ENV_VAR: "/studio/mgpt"}) == "/studio/mgpt"


@pytest.mark.parametrize(
    ("system", "machine", "key"),
    [
        ("linux", "x86_64", "linux-x64"),
        ("linux", "aarch64", "linux-arm64"),
        ("win32", "AMD64", "windows-x64"),  # platform.machine() on 64-bit Windows
        ("darwin", "arm64", "macos-arm64"),
        ("darwin", "x86_64", None),  # Intel Macs: PyTorch's last build was 2.2
        ("win32", "ARM64", None),
        ("linux", "ppc64le", None),
        ("freebsd14", "amd64", None),
    ],
)
def test_platforms_with_a_pytorch_build(system: str, machine: str, key: str | None) -> None:
    if key is None:
        with pytest.raises(InstallError) as refused:
            env.platform_key(system, machine)
        assert refused.value.kind == "unsupported_platform" and machine in refused.value.message
    else:
        assert env.platform_key(system, machine) == key


@pytest.mark.parametrize(
    ("system", "machine", "cuda", "variant", "args"),
    [
        ("linux", "x86_64", False, "cpu", ("--index-url", env.CPU_INDEX)),  # PyPI's Linux build is the CUDA one
        ("linux", "x86_64", True, "cuda", ()),
        ("linux", "aarch64", False, "cpu", ("--index-url", env.CPU_INDEX)),
        ("linux", "aarch64", True, "cuda", ("--index-url", env.CUDA_INDEX)),
        ("win32", "AMD64", False, "cpu", ()),  # PyPI's Windows build is CPU-only
        ("win32", "AMD64", True, "cuda", ("--index-url", env.CUDA_INDEX)),
        ("darwin", "arm64", False, "cpu", ()),
        ("darwin", "arm64", True, "cpu", ()),  # no CUDA on macOS, whatever is asked
    ],
)
def test_torch_build_and_index_per_platform(system, machine, cuda, variant, args) -> None:
    plan = env.torch_plan(system, machine, cuda, "auto")
    assert (plan.variant, plan.torch_args, plan.every_step_args, plan.offline) == (variant, args, (), False)


def test_torch_sources_pip_custom_url_and_wheel_folder(tmp_path: Path) -> None:
    pip = env.torch_plan("linux", "x86_64", False, "pip", requirement="torch==2.13.0")
    assert (pip.torch_args, pip.requirement, pip.offline) == ((), "torch==2.13.0", False)
    url = env.torch_plan("win32", "AMD64", True, "custom", "https://mirror.example/torch")
    assert url.torch_args == ("--index-url", "https://mirror.example/torch") and not url.offline
    folder = env.torch_plan("linux", "x86_64", False, "custom", str(tmp_path))
    assert folder.every_step_args == ("--no-index", "--find-links", str(tmp_path)) and folder.offline
    with pytest.raises(InstallError):
        env.torch_plan("linux", "x86_64", False, "custom", " ")


def test_nvidia_smi_is_looked_for_where_each_platform_keeps_it() -> None:
    def on_path(name: str) -> str | None:
        return "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None

    def nowhere(name: str) -> None:
        return None

    assert env.nvidia_smi_candidates("linux", {}, on_path) == ["/usr/bin/nvidia-smi"]
    assert env.nvidia_smi_candidates("linux", {}, nowhere) == []
    assert env.nvidia_smi_candidates("darwin", {}, on_path) == []
    windows = env.nvidia_smi_candidates("win32", {"SystemRoot": "D:\\Win", "ProgramFiles": "D:\\PF"}, nowhere)
    assert windows == [
        os.path.join("D:\\Win", "System32", "nvidia-smi.exe"),
        os.path.join("D:\\PF", "NVIDIA Corporation", "NVSMI", "nvidia-smi.exe"),
    ]


def test_nvidia_smi_answers() -> None:
    listed = "GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-5d3c8a8e-1c0e-4c4f-9d6d-1f0c3f1b2a11)\n"
    assert env.nvidia_answered(0, listed)
    no_driver = (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest "
        "NVIDIA driver is installed and running.\n"
    )
    assert not env.nvidia_answered(9, no_driver)
    assert not env.nvidia_answered(0, "No devices were found\n")


def test_process_options_per_platform() -> None:
    assert env.popen_options("linux") == {"start_new_session": True} == env.popen_options("darwin")
    assert env.popen_options("win32") == {"creationflags": 0x00000200 | 0x08000000}  # new group, no console
    assert env.kill_command("win32", 42) == ["taskkill", "/PID", "42", "/T", "/F"]
    assert env.kill_command("linux", 42) is None


def test_child_environment_drops_blender_python_variables() -> None:
    blender = {"PATH": "/bin", "PYTHONHOME": "/blender/python", "PYTHONPATH": "/x", "__PYVENV_LAUNCHER__": "/b"}
    child = env.child_environment(blender | {"PIP_INDEX_URL": "https://mirror"})
    assert child["PATH"] == "/bin" and child["PIP_INDEX_URL"] == "https://mirror"
    assert not {"PYTHONHOME", "PYTHONPATH", "__PYVENV_LAUNCHER__"} & set(child)
    assert child["PYTHONNOUSERSITE"] == "1"


def test_backend_wheel_is_found_in_the_first_folder_that_has_one(tmp_path: Path) -> None:
    (tmp_path / "runtime").mkdir()
    (tmp_path / "dist").mkdir()
    for name in ("motiongpt3_blender-0.1.0-py3-none-any.whl", "motiongpt3_blender-0.2.0-py3-none-any.whl"):
        (tmp_path / "dist" / name).write_bytes(b"")
    folders = [str(tmp_path / "runtime"), str(tmp_path / "dist"), str(tmp_path / "missing")]
    assert env.find_backend_wheel(folders) == str(tmp_path / "dist" / "motiongpt3_blender-0.2.0-py3-none-any.whl")
    assert env.wheel_version(env.find_backend_wheel(folders) or "") == "0.2.0"
    assert env.find_backend_wheel([str(tmp_path / "runtime")]) is None


# -- Python checks --------------------------------------------------------------------------------------------------


def test_python_check_script_on_this_interpreter() -> None:
    done = subprocess.run([sys.executable, "-c", env.CHECK_PYTHON], capture_output=True, text=True, check=True)
    report = env.tagged_json(done.stdout, "MOTIONGPT3_PYTHON")
    assert report is not None and env.check_python(report) == tuple(sys.version_info[:3])


@pytest.mark.parametrize(
    ("report", "kind"),
    [
        ({"version": [3, 10, 13], "venv": True, "ensurepip": True}, "unsupported_python"),
        ({"version": [3, 14, 0], "venv": True, "ensurepip": True}, "unsupported_python"),
        ({}, "unsupported_python"),
        ({"version": [3, 12, 1], "venv": True, "ensurepip": False}, "no_venv"),  # Debian without python3-venv
    ],
)
def test_python_check_refuses(report: dict, kind: str) -> None:
    with pytest.raises(InstallError) as refused:
        env.check_python(report | {"executable": "/usr/bin/python3"})
    assert refused.value.kind == kind and "/usr/bin/python3" in refused.value.message


# -- pip's real output ----------------------------------------------------------------------------------------------


def test_progress_follows_a_real_pip_install() -> None:
    lines = (PIP_OUTPUT / "backend_step.log").read_text().splitlines()
    progress = PipProgress()
    fractions, labels = [], []
    for line in lines:
        progress.feed(line)
        fractions.append(progress.fraction)
        labels.append(progress.label)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    installing = next(i for i, line in enumerate(lines) if line.startswith("Installing collected packages"))
    assert fractions[installing] == 0.85 and max(fractions[:installing]) <= 0.8
    # Every file pip downloaded ("Progress N of N" when complete) is counted once in the byte total.
    sizes = [int(line.split()[-1]) for line in lines if line.startswith("Progress ") and line.split()[1] != "0"]
    finished = {size for size in sizes if f"Progress {size} of {size}" in lines}
    assert f"downloading {sum(finished) / 1e6:.0f} of {sum(finished) / 1e6:.0f} MB" in labels


def test_pip_version_after_the_upgrade_step() -> None:
    assert pip_version((PIP_OUTPUT / "pip_upgrade.log").read_text()) == (26, 3)
    assert pip_version("Requirement already satisfied: pip in ./env/lib/python3.11/site-packages (24.0)\n") == (24, 0)
    assert pip_version("ERROR: something else\n") == ()


@pytest.mark.parametrize(
    ("log", "step", "kind"),
    [
        ("no_network.log", "torch", "no_network"),  # connection refused
        ("no_dns.log", "torch", "no_network"),  # name resolution
        ("no_space.log", "backend", "no_space"),  # [Errno 28] while unpacking
        ("no_torch.log", "torch", "torch_unavailable"),  # the index has no such torch
        ("no_torch.log", "backend", "pip_failed"),
    ],
)
def test_real_pip_failures_get_their_kind(log: str, step: str, kind: str) -> None:
    plan = TorchPlan("cpu", "torch==99", (), (), "the folder /wheels")
    error = classify_failure(step, 1, (PIP_OUTPUT / log).read_text(), plan)
    assert error.kind == kind
    label = dict((key, text) for key, text, _ in STEPS)[step]
    assert error.message.startswith(label)


# -- recovery after a crash -----------------------------------------------------------------------------------------


def test_recover_after_a_crash_mid_install(tmp_path: Path) -> None:
    (tmp_path / "env" / "lib").mkdir(parents=True)  # no marker: half made
    (tmp_path / env.LOCK).write_text("1\n")
    os.utime(tmp_path / env.LOCK, (time.time() - 120, time.time() - 120))  # its Blender stopped beating
    trash = env.recover(str(tmp_path))
    assert not (tmp_path / "env").exists() and not (tmp_path / env.LOCK).exists()
    assert len(trash) == 1 and Path(trash[0]).name.startswith(env.TRASH_PREFIX)


def test_recover_after_a_crash_mid_update(tmp_path: Path) -> None:
    _fake_installed_env(tmp_path)
    before = _tree_digest(tmp_path / "env")
    (tmp_path / "env").rename(tmp_path / env.OLD_DIR)
    (tmp_path / "env" / "lib").mkdir(parents=True)  # the update's half-made environment
    env.recover(str(tmp_path))
    assert _tree_digest(tmp_path / "env") == before and not (tmp_path / env.OLD_DIR).exists()


def test_recover_leaves_a_running_install_alone(tmp_path: Path) -> None:
    (tmp_path / "env" / "lib").mkdir(parents=True)
    (tmp_path / env.LOCK).write_text("1\n")  # fresh: another Blender is installing
    assert env.recover(str(tmp_path)) == [] and (tmp_path / "env" / "lib").is_dir()
    assert env.env_status(str(tmp_path), sys.platform).installing_elsewhere


def test_status_reports_an_environment_whose_python_is_gone(tmp_path: Path) -> None:
    env_dir = _fake_installed_env(tmp_path)
    status = env.env_status(str(tmp_path), sys.platform)
    assert status.installed and status.problem == "" and status.info["backend"] == "0.0.9"
    (env_dir / "pyvenv.cfg").write_text("home = /opt/blender-4.2-removed/python/bin\n")
    assert "/opt/blender-4.2-removed" in env.env_status(str(tmp_path), sys.platform).problem


# -- the installer with real processes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "kind"),
    [
        ({"online": False}, "offline"),
        ({"wheel": ""}, "no_wheel"),
        ({"system": "darwin", "machine": "x86_64"}, "unsupported_platform"),
        ({"update": True}, "not_installed"),
    ],
)
def test_refusals_change_nothing(tmp_path: Path, backend_wheel: Path, overrides: dict, kind: str) -> None:
    root = tmp_path / "root"
    installer = Installer()
    with pytest.raises(InstallError) as refused:
        installer.start(_request(root, overrides.pop("wheel", backend_wheel), **overrides))
    assert refused.value.kind == kind and installer.state == "idle"
    assert not root.exists()


def test_offline_with_a_wheel_folder_is_allowed(tmp_path: Path, backend_wheel: Path) -> None:
    installer = Installer()
    request = _request(
        tmp_path / "root", backend_wheel, online=False, torch_source="custom", torch_custom=str(tmp_path)
    )
    installer.start(request)  # every package from a local folder: no network, so online access is not needed
    assert installer.running
    installer.cancel()
    assert installer.state == "cancelled" and installer.wait_for_cleanup()


def test_refusals_next_to_an_installed_backend(tmp_path: Path, backend_wheel: Path) -> None:
    _fake_installed_env(tmp_path)
    before = _tree_digest(tmp_path)
    installer = Installer()
    with pytest.raises(InstallError) as refused:
        installer.start(_request(tmp_path, backend_wheel))
    assert refused.value.kind == "already_installed"
    installer.free_bytes = lambda path: 2 * 10**9  # 2 GB free: the CPU build needs 3
    with pytest.raises(InstallError) as refused:
        installer.start(_request(tmp_path, backend_wheel, update=True))
    assert refused.value.kind == "no_space" and "2.0 GB" in refused.value.message
    (tmp_path / env.LOCK).write_text("1\n")
    with pytest.raises(InstallError) as refused:
        Installer().start(_request(tmp_path, backend_wheel, update=True))
    assert refused.value.kind == "busy"
    (tmp_path / env.LOCK).unlink()
    assert _tree_digest(tmp_path) == before


def test_a_python_that_does_not_run(tmp_path: Path, backend_wheel: Path) -> None:
    installer = Installer()
    installer.start(_request(tmp_path, backend_wheel, python=str(tmp_path / "no" / "python3.11")))
    assert installer.state == "failed" and installer.error is not None and installer.error.kind == "no_python"
    assert not (tmp_path / "env").exists() and not (tmp_path / env.LOCK).exists()


def test_an_unsupported_python(tmp_path: Path, backend_wheel: Path) -> None:
    found = sorted(Path.home().glob(".pyenv/versions/3.10*/bin/python3.10"))
    if not found:
        pytest.skip("no Python 3.10 interpreter on this machine (pyenv's versions/3.10*)")
    installer = Installer()
    installer.start(_request(tmp_path, backend_wheel, python=str(found[-1])))
    _drive(installer, lambda: not installer.running)
    assert installer.state == "failed" and installer.error is not None
    assert installer.error.kind == "unsupported_python" and "3.10" in installer.error.message
    assert not (tmp_path / "env").exists()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds leftover processes through /proc (Linux)")
def test_cancel_mid_install_ends_every_process_and_leaves_nothing(tmp_path: Path, backend_wheel: Path) -> None:
    installer = Installer()
    installer.start(_request(tmp_path, backend_wheel))
    _drive(installer, lambda: installer.step == "venv" and (tmp_path / "env" / "bin").is_dir())
    assert _processes_mentioning(str(tmp_path / "env"))  # venv (and its ensurepip child) at work
    installer.cancel()
    assert installer.state == "cancelled" and installer.message == "Cancelled: nothing was installed"
    assert not (tmp_path / "env").exists()  # moved to the trash at once
    assert installer.wait_for_cleanup()
    assert sorted(p.name for p in tmp_path.iterdir()) == [env.LOG]
    assert _processes_mentioning(str(tmp_path)) == []  # pip / ensurepip ended with their process group


def test_update_cancelled_keeps_the_installed_backend(tmp_path: Path, backend_wheel: Path) -> None:
    _fake_installed_env(tmp_path)
    before = _tree_digest(tmp_path / "env")
    installer = Installer()
    installer._raw_progress = True  # what a finished install leaves: the next run must not start from it
    installer.start(_request(tmp_path, backend_wheel, update=True))
    _drive(installer, lambda: installer.step == "venv" and (tmp_path / env.OLD_DIR).is_dir())
    assert env.env_status(str(tmp_path), sys.platform).installed is False  # the one being built has no marker
    _drive(installer, lambda: installer.step == "pip")
    assert "--progress-bar" not in installer.process.args  # pip's version is not known yet
    installer.cancel()
    assert installer.message == "Cancelled: the installed backend is unchanged"
    assert _tree_digest(tmp_path / "env") == before and not (tmp_path / env.OLD_DIR).exists()
    assert installer.wait_for_cleanup()


def test_no_network_fails_typed_and_an_update_keeps_the_installed_backend(tmp_path: Path, backend_wheel: Path) -> None:
    _fake_installed_env(tmp_path)
    before = _tree_digest(tmp_path / "env")
    installer = Installer()
    installer.start(_request(tmp_path, backend_wheel, update=True))
    _drive(installer, lambda: not installer.running)
    assert installer.state == "failed" and installer.error is not None, installer.log_tail()
    assert installer.error.kind == "no_network" and installer.step == "torch"
    assert "Connection refused" in installer.error.message
    assert _tree_digest(tmp_path / "env") == before
    assert installer.wait_for_cleanup() and sorted(p.name for p in tmp_path.iterdir()) == ["env", env.LOG]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="mounts a small tmpfs (needs root)")
def test_a_full_disk_fails_typed_and_leaves_nothing(tmp_path: Path, backend_wheel: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        installer = Installer()
        installer.needed_bytes = {"cpu": 1, "cuda": 1}  # let it start: the disk fills during the venv step
        installer.start(_request(disk, backend_wheel))
        _drive(installer, lambda: not installer.running)
        assert installer.state == "failed" and installer.error is not None and installer.error.kind == "no_space"
        assert installer.step == "venv" and installer.wait_for_cleanup()
        assert sorted(p.name for p in disk.iterdir()) == [env.LOG]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_remove_deletes_the_environment(tmp_path: Path) -> None:
    _fake_installed_env(tmp_path)
    installer = Installer()
    installer.remove(str(tmp_path), sys.platform)
    assert not (tmp_path / "env").exists() and installer.wait_for_cleanup() and list(tmp_path.iterdir()) == []
    with pytest.raises(InstallError) as refused:
        installer.remove(str(tmp_path), sys.platform)
    assert refused.value.kind == "not_installed"


def test_marker_is_what_makes_an_environment_installed(tmp_path: Path) -> None:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    assert env.read_marker(str(env_dir)) is None
    env.write_marker(str(env_dir), {"backend": "0.1.0"})
    assert json.loads((env_dir / env.MARKER).read_text()) == {"backend": "0.1.0"}
    assert not list(env_dir.glob("*.tmp"))
