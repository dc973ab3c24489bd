"""Where the local backend's Python environment lives and what installing it means on each platform (no bpy, no I/O
beyond small files): folder layout, interpreter paths, platform support, the torch build and index, pip commands,
NVIDIA detection, the completion marker, and recovery of folders a crashed install left behind."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# The folders under the environment root (see `default_root`): the environment (complete once MARKER is in it; it is
# built in place so that its scripts' paths are right) and, during an update, the previous one, put back if the update
# does not finish; deleted folders are first renamed to TRASH_* (at once) and then deleted on a thread.
ENV_DIR = "env"
OLD_DIR = "env.old"
TRASH_PREFIX = ".trash-"
MARKER = "motiongpt3-backend.json"  # written last into the new environment: it exists only in a complete one
LOCK = "install.lock"  # an install in progress (any Blender); its modification time is the heartbeat
LOG = "install.log"
LOCK_STALE_S = 60.0  # a lock untouched this long belongs to an install that died with its Blender
ROOT_ENV_VAR = "MOTIONGPT3_BACKEND_HOME"  # overrides the default root (studio installs, tests)

SUPPORTED_PYTHONS = ((3, 11), (3, 12), (3, 13))
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
# Free space an install needs (the environment plus pip's unpacking and cache): measured 1.4 GB for the CPU build on
# Linux; the CUDA build brings ~4 GB of NVIDIA libraries.
NEEDED_BYTES = {"cpu": 3 * 10**9, "cuda": 8 * 10**9}
DOWNLOAD_MB = {"cpu": 300, "cuda": 3500}  # roughly what is downloaded (torch + the backend's packages), for the prompt


class InstallError(Exception):
    """A failure with a kind the UI can act on (`kind`) and a message naming the cause and what to do."""

    KINDS = (
        "offline",  # Blender's "Allow Online Access" is off
        "no_network",  # a package index could not be reached
        "no_space",  # not enough free disk space
        "unsupported_platform",  # no PyTorch build for this OS / CPU
        "no_python",  # the Python that makes the environment cannot be run
        "no_venv",  # that Python has no venv / ensurepip
        "unsupported_python",  # its version is outside 3.11-3.13
        "no_wheel",  # the add-on carries no backend wheel
        "torch_unavailable",  # the index has no matching torch build
        "pip_failed",  # any other pip failure (its last error line is in the message)
        "verify_failed",  # the new environment cannot import the backend
        "busy",  # an install is already running (this or another Blender)
        "not_installed",  # Update / Start without an environment
        "already_installed",  # Install over a working environment (use Update)
    )

    def __init__(self, kind: str, message: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown install error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message


# -- folders --------------------------------------------------------------------------------------------------------


def default_root(user_resource_dir: str, environ: Mapping[str, str] = os.environ) -> str:
    """The environment root shared by every Blender version of this user: `$MOTIONGPT3_BACKEND_HOME`, else
    `motiongpt3` beside Blender's per-version user folder (`bpy.utils.resource_path('USER')`, e.g.
    ~/.config/blender/4.2 -> ~/.config/blender/motiongpt3; %APPDATA%\\Blender Foundation\\Blender\\motiongpt3;
    ~/Library/Application Support/Blender/motiongpt3)."""
    if environ.get(ROOT_ENV_VAR):
        return os.path.abspath(environ[ROOT_ENV_VAR])
    return os.path.join(os.path.dirname(os.path.normpath(user_resource_dir)), "motiongpt3")


def env_python(env_dir: str, system: str) -> str:
    """The interpreter of a virtual environment: Scripts\\python.exe on Windows, bin/python elsewhere."""
    if system == "win32":
        return os.path.join(env_dir, "Scripts", "python.exe")
    return os.path.join(env_dir, "bin", "python")


def read_marker(env_dir: str) -> dict | None:
    """The completion marker of an environment (what was installed), or None when it is not complete."""
    try:
        with open(os.path.join(env_dir, MARKER), encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(env_dir: str, data: dict) -> None:
    temporary = os.path.join(env_dir, MARKER + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=1, sort_keys=True)
    os.replace(temporary, os.path.join(env_dir, MARKER))


def venv_home(env_dir: str) -> str | None:
    """`home` of the environment's pyvenv.cfg: the folder of the Python it was made with."""
    try:
        with open(os.path.join(env_dir, "pyvenv.cfg"), encoding="utf-8") as file:
            for line in file:
                key, _, value = line.partition("=")
                if key.strip().lower() == "home":
                    return value.strip()
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class EnvStatus:
    """What the preferences show about the environment under a root."""

    root: str
    installed: bool
    python: str  # the environment's interpreter (exists when installed)
    info: dict  # the marker: backend / torch versions, variant, size, ...
    problem: str  # non-empty: the environment cannot run (press Update to rebuild it)
    installing_elsewhere: bool  # a fresh lock of an install this process does not run


def env_status(root: str, system: str, own_lock: bool = False, now: float | None = None) -> EnvStatus:
    env_dir = os.path.join(root, ENV_DIR)
    python = env_python(env_dir, system)
    marker = read_marker(env_dir)
    problem = ""
    if marker is not None:
        home = venv_home(env_dir)
        if not os.path.exists(python):
            problem = f"its Python is missing ({python})"
        elif home is not None and not os.path.isdir(home):
            problem = f"the Python it was made with is gone ({home}); press Update to rebuild it with this Blender's"
    busy = not own_lock and lock_is_fresh(root, now)
    return EnvStatus(root, marker is not None, python, marker or {}, problem, busy)


def lock_is_fresh(root: str, now: float | None = None) -> bool:
    try:
        touched = os.path.getmtime(os.path.join(root, LOCK))
    except OSError:
        return False
    return (time.time() if now is None else now) - touched < LOCK_STALE_S


def trash_path(root: str) -> str:
    return os.path.join(root, f"{TRASH_PREFIX}{time.time_ns()}")


def recover(root: str, now: float | None = None) -> list[str]:
    """Put the root back in a consistent state after an install that died with its Blender (no fresh lock): a
    half-built environment (no marker) goes to the trash, and an update's previous environment comes back. Returns
    the folders now in the trash (the caller deletes them, off the UI thread)."""
    if not os.path.isdir(root):
        return []
    if not lock_is_fresh(root, now):
        try:
            os.remove(os.path.join(root, LOCK))
        except OSError:
            pass
        env_dir, old = os.path.join(root, ENV_DIR), os.path.join(root, OLD_DIR)
        if os.path.isdir(env_dir) and read_marker(env_dir) is None:
            os.replace(env_dir, trash_path(root))  # never a half-made environment under the name that runs
        if os.path.isdir(old):
            os.replace(old, trash_path(root) if os.path.isdir(env_dir) else env_dir)
    return [entry.path for entry in os.scandir(root) if entry.name.startswith(TRASH_PREFIX)]


# -- platform -------------------------------------------------------------------------------------------------------


def normalise_machine(machine: str) -> str:
    machine = machine.lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def platform_key(system: str, machine: str) -> str:
    """Blender's platform name ("linux-x64", "windows-x64", "macos-arm64", ...) where PyTorch publishes wheels;
    raises InstallError("unsupported_platform") elsewhere (Intel Macs: PyTorch stopped at 2.2; Windows on ARM)."""
    given, machine = machine, normalise_machine(machine)
    supported = {
        ("linux", "x86_64"): "linux-x64",
        ("linux", "aarch64"): "linux-arm64",
        ("win32", "x86_64"): "windows-x64",
        ("darwin", "aarch64"): "macos-arm64",
    }
    key = supported.get((system, machine))
    if key is None:
        raise InstallError(
            "unsupported_platform",
            f"PyTorch publishes no current build for {system} on {given}: the local backend can be installed on "
            "Linux (x86-64, ARM64), Windows (x86-64) and macOS (Apple silicon). Run the backend on another machine "
            "and enter its address in the preferences instead.",
        )
    return key


def nvidia_smi_candidates(system: str, environ: Mapping[str, str], which: Callable[[str], str | None]) -> list[str]:
    """Where nvidia-smi may be: on PATH, and on Windows where the driver puts it (System32, the old NVSMI folder).
    macOS has no CUDA."""
    if system == "darwin":
        return []
    found = [p for p in [which("nvidia-smi")] if p]
    if system == "win32":
        system_root = environ.get("SystemRoot", r"C:\Windows")
        program_files = environ.get("ProgramFiles", r"C:\Program Files")
        found += [
            os.path.join(system_root, "System32", "nvidia-smi.exe"),
            os.path.join(program_files, "NVIDIA Corporation", "NVSMI", "nvidia-smi.exe"),
        ]
    return found


def find_nvidia_smi(system: str, environ: Mapping[str, str] = os.environ) -> str | None:
    for candidate in nvidia_smi_candidates(system, environ, shutil.which):
        if os.path.isfile(candidate):
            return candidate
    return None


def nvidia_answered(returncode: int, output: str) -> bool:
    """`nvidia-smi -L` lists "GPU 0: ..." lines when a driver answers (it fails without a driver or GPU)."""
    return returncode == 0 and any(line.startswith("GPU ") for line in output.splitlines())


@dataclass(frozen=True)
class TorchPlan:
    """Which torch build is installed and where pip gets it (and, for a wheel folder, everything else) from."""

    variant: str  # "cpu" | "cuda"
    requirement: str  # e.g. "torch>=2.4"
    torch_args: tuple[str, ...]  # index options of the torch step
    every_step_args: tuple[str, ...]  # options of every pip step (a wheel folder: --no-index --find-links FOLDER)
    source: str  # for the UI: "PyTorch's CPU index", "pip's configuration", ...

    @property
    def offline(self) -> bool:
        """Every package comes from a local folder: the install needs no network."""
        return "--no-index" in self.every_step_args


def torch_plan(
    system: str, machine: str, cuda: bool, source: str, custom: str = "", requirement: str = "torch>=2.4"
) -> TorchPlan:
    """The torch step for a platform: `source` "auto" takes PyTorch's own indexes (the CPU index where PyPI's default
    build would be the large CUDA one, i.e. Linux; the CUDA index on Windows, whose PyPI build is CPU-only; PyPI on
    macOS, whose build has Metal), "pip" leaves the choice to pip's configuration (pip.conf, PIP_INDEX_URL), and
    "custom" uses `custom`: an index URL for torch, or a folder of wheels for every package (nothing downloaded)."""
    key = platform_key(system, machine)
    variant = "cuda" if cuda and not key.startswith("macos") else "cpu"
    requirement = requirement.strip() or "torch>=2.4"
    if source == "pip":
        return TorchPlan(variant, requirement, (), (), "pip's configuration")
    if source == "custom":
        custom = custom.strip()
        if not custom:
            raise InstallError("pip_failed", "Torch Source is Custom but no index URL or wheel folder is given")
        if "://" in custom:
            return TorchPlan(variant, requirement, ("--index-url", custom), (), custom)
        folder = os.path.abspath(custom)
        return TorchPlan(variant, requirement, (), ("--no-index", "--find-links", folder), f"the folder {folder}")
    if source != "auto":
        raise ValueError(f"unknown torch source {source!r}")
    if key.startswith("macos"):
        return TorchPlan("cpu", requirement, (), (), "PyPI (Metal and CPU)")
    if variant == "cuda":
        if key == "linux-x64":
            return TorchPlan("cuda", requirement, (), (), "PyPI (CUDA build)")
        return TorchPlan("cuda", requirement, ("--index-url", CUDA_INDEX), (), "PyTorch's CUDA index")
    if key == "windows-x64":
        return TorchPlan("cpu", requirement, (), (), "PyPI (CPU build)")
    return TorchPlan("cpu", requirement, ("--index-url", CPU_INDEX), (), "PyTorch's CPU index")


# -- commands -------------------------------------------------------------------------------------------------------

PIP_COMMON = ("--disable-pip-version-check", "--no-input")
RAW_PROGRESS_PIP = (24, 1)  # `--progress-bar raw` ("Progress N of M" lines) exists from pip 24.1 on

CHECK_PYTHON = (
    "import importlib.util, json, sys; print('MOTIONGPT3_PYTHON ' + json.dumps({'version': list(sys.version_info[:3]), "
    "'venv': importlib.util.find_spec('venv') is not None, 'ensurepip': importlib.util.find_spec('ensurepip') "
    "is not None, 'executable': sys.executable}))"
)

VERIFY_MODULE = "backend.cli.install_check"  # run in the new environment: imports torch and the backend, prints
# one "MOTIONGPT3_VERIFY {json}" line (backend / torch versions, CUDA, Python, the environment's size)


def pip_command(python: str, *args: str, raw_progress: bool = False) -> list[str]:
    progress = ["--progress-bar", "raw"] if raw_progress else []
    return [python, "-m", "pip", "install", *PIP_COMMON, *progress, *args]


def check_python(report: dict) -> tuple[int, ...]:
    """Validate CHECK_PYTHON's report: a supported version with venv and ensurepip; returns the version."""
    version = tuple(int(v) for v in report.get("version", ())[:3])
    where = report.get("executable", "?")
    if len(version) != 3 or version[:2] not in SUPPORTED_PYTHONS:
        shown = ".".join(map(str, version)) or "unknown"
        raise InstallError(
            "unsupported_python",
            f"{where} is Python {shown}; the backend needs Python 3.11, 3.12 or 3.13. Set Python for the Backend in "
            "the preferences to such an interpreter.",
        )
    missing = [m for m in ("venv", "ensurepip") if not report.get(m)]
    if missing:
        raise InstallError(
            "no_venv",
            f"{where} cannot make a virtual environment (no {' or '.join(missing)}). Set Python for the Backend in the "
            "preferences to a full Python 3.11-3.13 installation (python.org, or your system's with its venv package).",
        )
    return version


def tagged_json(output: str, tag: str) -> dict | None:
    """The JSON object on the last line of `output` starting with `tag`."""
    for line in reversed(output.splitlines()):
        if line.startswith(tag + " "):
            try:
                data = json.loads(line[len(tag) + 1 :])
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for the installer's and the backend's processes: Blender's own, without the variables that
    would point a child interpreter at Blender's Python (PYTHONHOME, PYTHONPATH, macOS's __PYVENV_LAUNCHER__, ...)
    or at the user's site-packages."""
    dropped = {"PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONEXECUTABLE"}
    dropped |= {"__PYVENV_LAUNCHER__", "VIRTUAL_ENV", "CONDA_PREFIX"}
    env = {k: v for k, v in environ.items() if k not in dropped}
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONUTF8"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def kill_command(system: str, pid: int) -> list[str] | None:
    """The command that ends a process and its children on Windows (taskkill /T); None on POSIX, where the installer
    signals the child's own process group instead."""
    if system == "win32":
        return ["taskkill", "/PID", str(pid), "/T", "/F"]
    return None


def popen_options(system: str) -> dict:
    """subprocess.Popen options: a process group of its own (so Cancel ends pip and whatever it started), and on
    Windows no console window."""
    if system == "win32":
        create_new_process_group, create_no_window = 0x00000200, 0x08000000
        return {"creationflags": create_new_process_group | create_no_window}
    return {"start_new_session": True}


def find_backend_wheel(folders: list[str]) -> str | None:
    """The newest motiongpt3_blender-*.whl in the first of `folders` that has one (the add-on's runtime/ folder, then
    a source checkout's dist/)."""
    for folder in folders:
        try:
            names = sorted(n for n in os.listdir(folder) if n.startswith("motiongpt3_blender-") and n.endswith(".whl"))
        except OSError:
            continue
        if names:
            return os.path.join(folder, names[-1])
    return None


def wheel_version(wheel: str) -> str:
    """The version in a wheel's file name (name-version-python-abi-platform.whl)."""
    parts = os.path.basename(wheel)[: -len(".whl")].split("-")
    return parts[1] if len(parts) >= 5 else ""
