"""Install Local Backend as a state machine (no bpy): each step is a child process (the Python check, nvidia-smi, venv,
pip) whose output goes to a log file that `poll()` reads without waiting. The environment counts as installed only
once its marker is written, at the very end; Cancel, a failure or a crash put the half-made one in the trash and, for
an update, the previous environment back, so nothing half-installed is ever started."""

from __future__ import annotations

import atexit
import io
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .backend_env import (
    CHECK_PYTHON,
    DOWNLOAD_MB,
    ENV_DIR,
    LOCK,
    LOG,
    NEEDED_BYTES,
    OLD_DIR,
    RAW_PROGRESS_PIP,
    VERIFY_MODULE,
    InstallError,
    TorchPlan,
    check_python,
    child_environment,
    env_python,
    env_status,
    find_nvidia_smi,
    kill_command,
    nvidia_answered,
    pip_command,
    platform_key,
    popen_options,
    recover,
    tagged_json,
    torch_plan,
    trash_path,
    write_marker,
)

# (key, what the panel says, share of the progress bar): measured on Linux with torch from local disk the steps took
# venv 6 s, pip 3 s, torch 32 s, backend + dependencies 45 s; a real torch download makes its share larger.
STEPS = (
    ("python", "Checking Python", 1),
    ("gpu", "Looking for an NVIDIA GPU", 1),
    ("venv", "Creating the environment", 5),
    ("pip", "Updating pip", 3),
    ("torch", "Installing PyTorch", 55),
    ("backend", "Installing the MotionGPT3 backend", 30),
    ("verify", "Checking the new environment", 5),
)
HEARTBEAT_S = 5.0
LOW_SPACE_BYTES = 256 * 1024**2  # a step that fails with less free space than this failed for want of space
KILL_WAIT_S = 5.0

NETWORK_SIGNS = (  # the readable ones first: the first found is quoted in the message
    "Failed to resolve",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "nodename nor servname",
    "getaddrinfo failed",
    "Network is unreachable",
    "No route to host",
    "Connection refused",
    "Connection reset",
    "Read timed out",
    "CERTIFICATE_VERIFY_FAILED",
    "NameResolutionError",
    "NewConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "RemoteDisconnected",
    "SSLError",
)
SPACE_SIGNS = ("No space left on device", "[Errno 28]", "WinError 112", "not enough space on the disk", "[Errno 122]")


# -- pip's output ---------------------------------------------------------------------------------------------------


@dataclass
class PipProgress:
    """How far one `pip install` is, from its output lines: downloads by bytes ("Progress N of M" of
    `--progress-bar raw`), then "Installing collected packages", then "Successfully installed"."""

    packages: int = 0
    done_bytes: int = 0  # of finished files
    seen_bytes: int = 0  # sizes of finished files
    file_done: int = 0
    file_total: int = 0
    phase: str = "resolving"  # resolving | downloading | installing | done
    label: str = ""
    fraction: float = 0.0  # 0..1, never goes back

    def feed(self, line: str) -> None:
        text = line.strip()
        progress = re.fullmatch(r"Progress (\d+) of (\d+)", text)
        if progress:
            done, total = int(progress.group(1)), int(progress.group(2))
            if done < self.file_done or (done == 0 and self.file_total):  # a new file
                self.done_bytes += self.file_total
                self.seen_bytes += self.file_total
                self.file_done = self.file_total = 0
            self.file_done, self.file_total = done, total
            self.phase = "downloading"
            megabytes = (self.done_bytes + done) / 1e6, (self.seen_bytes + total) / 1e6
            self.label = f"downloading {megabytes[0]:.0f} of {megabytes[1]:.0f} MB"
        elif text.startswith("Collecting "):
            self.packages += 1
            self.label = text.split(" (")[0].replace("Collecting", "getting", 1)
        elif text.startswith("Downloading "):
            self.label = "downloading " + text.split()[1].split("/")[-1]
        elif text.startswith("Installing collected packages"):
            self.phase, self.label = "installing", "unpacking the packages"
        elif text.startswith("Successfully installed"):
            self.phase, self.label = "done", "installed"
        self.fraction = max(self.fraction, self._estimate())

    def _estimate(self) -> float:
        if self.phase == "done":
            return 1.0
        if self.phase == "installing":
            return 0.85
        seen = self.seen_bytes + self.file_total
        downloaded = (self.done_bytes + self.file_done) / seen if seen else 0.0
        return min(0.8, 0.05 + 0.75 * downloaded + 0.005 * self.packages)


def pip_version(output: str) -> tuple[int, ...]:
    """The pip version `pip install --upgrade pip` left in place, from its output (() when not found)."""
    found = re.search(r"Successfully installed (?:\S+ )*pip-([\d.]+)", output) or re.search(
        r"Requirement already satisfied: pip in .*\(([\d.]+)\)", output
    )
    return tuple(int(p) for p in found.group(1).strip(".").split(".")) if found else ()


def last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:") or "Error" in line.split(":")[0]]
    return (errors or lines or ["(no output)"])[-1]


def sign_excerpt(output: str, signs: tuple[str, ...]) -> str:
    """The part of the first output line that shows one of `signs` (up to the next quote), e.g. "Failed to establish
    a new connection: [Errno 111] Connection refused"."""
    for line in output.splitlines():
        for sign in signs:
            at = line.find(sign)
            if at >= 0:
                return re.split(r"\"\)|'\)|: '", line[at:])[0][:200].strip()
    return last_error_line(output)


def classify_failure(step: str, returncode: int, output: str, plan: TorchPlan | None = None) -> InstallError:
    """The typed error for a step that exited with `returncode`, read from its output."""
    label = dict((key, text) for key, text, _ in STEPS).get(step, step)
    if any(sign in output for sign in SPACE_SIGNS):
        return InstallError(
            "no_space",
            f"{label}: the disk is full ({sign_excerpt(output, SPACE_SIGNS)}). Free some space or "
            "choose another Environment Folder in the preferences, then press Install again.",
        )
    if any(sign in output for sign in NETWORK_SIGNS):
        return InstallError(
            "no_network",
            f"{label}: a package index could not be reached ({sign_excerpt(output, NETWORK_SIGNS)})."
            " Check the internet connection (and proxy settings), then press Install again.",
        )
    if step == "venv" and ("ensurepip" in output or "No module named venv" in output):
        return InstallError(
            "no_venv",
            f"{label}: this Python cannot make a virtual environment "
            f"({last_error_line(output)}). Set Python for the Backend to a full Python 3.11-3.13.",
        )
    if step == "torch" and "No matching distribution found for torch" in output:
        where = plan.source if plan is not None else "the index"
        return InstallError(
            "torch_unavailable",
            f"{label}: {where} has no PyTorch build matching "
            f"{plan.requirement if plan else 'torch'} for this Python and platform "
            f"({last_error_line(output)}).",
        )
    if step == "verify":
        return InstallError(
            "verify_failed",
            f"{label}: the new environment cannot run the backend ({last_error_line(output)}); nothing was changed.",
        )
    return InstallError("pip_failed", f"{label} failed (exit {returncode}): {last_error_line(output)}")


# -- the installer --------------------------------------------------------------------------------------------------


@dataclass
class InstallRequest:
    """What Install / Update is asked to do (from the preferences)."""

    root: str  # the environment root (backend_env.default_root)
    python: str  # the interpreter that makes the environment (Blender's own unless the preferences say otherwise)
    wheel: str  # the backend wheel the add-on carries
    device: str = "auto"  # auto (nvidia-smi decides) | cpu | cuda
    torch_source: str = "auto"  # auto | pip | custom (see backend_env.torch_plan)
    torch_custom: str = ""
    torch_requirement: str = "torch>=2.4"
    update: bool = False  # rebuild next to a working environment and swap it in at the end
    online: bool = True  # bpy.app.online_access
    blender: str = ""  # the Blender version that installs (stored in the marker)
    system: str = sys.platform
    machine: str = field(default_factory=platform.machine)
    environ: Mapping[str, str] | None = None  # the children's environment (None: this process's)


def _free_bytes(path: str) -> int:
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return shutil.disk_usage(path).free


class Installer:
    """One install at a time; `poll()` is the timer body. States: idle | running | done | failed | cancelled."""

    def __init__(self) -> None:
        self.state = "idle"
        self.step = ""
        self.step_label = ""
        self.progress = 0.0
        self.message = ""
        self.error: InstallError | None = None
        self.request: InstallRequest | None = None
        self.plan: TorchPlan | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.free_bytes: Callable[[str], int] = _free_bytes
        self.needed_bytes = dict(NEEDED_BYTES)  # free space checked before starting, per torch variant
        self._log_file: io.FileIO | None = None
        self._log_offset = 0
        self._partial_line = ""
        self._step_lines: list[str] = []
        self._pip = PipProgress()
        self._raw_progress = False
        self._cuda = False
        self._building = False  # the environment folder is this install's, not yet complete
        self._started = 0.0
        self._heartbeat = 0.0
        self._cleaners: list[threading.Thread] = []
        atexit.register(self.shutdown)

    # -- what the UI reads ----------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def log_path(self) -> str:
        return os.path.join(self.request.root, LOG) if self.request else ""

    def log_tail(self, lines: int = 6) -> list[str]:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, os.path.getsize(self.log_path) - 8192))
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in re.split(r"[\r\n]+", text) if line.strip()][-lines:]

    def summary(self) -> tuple[str, float]:
        if self.running:
            detail = f": {self._pip.label}" if self._pip.label and self.step in ("pip", "torch", "backend") else ""
            return f"{self.step_label}{detail}", self.progress
        return self.message, self.progress

    def refuse(self, error: InstallError) -> None:
        """Show a refusal (offline, no wheel, already installed, ...) without touching a running install."""
        if not self.running:
            self.message, self.error = error.message, error

    # -- start ----------------------------------------------------------------------------------------------------

    def start(self, request: InstallRequest) -> None:
        """Check everything that can be checked without changing anything (raising InstallError), then start."""
        if self.running:
            raise InstallError("busy", "an install is already running: wait for it or press Cancel")
        platform_key(request.system, request.machine)
        if not request.wheel or not os.path.isfile(request.wheel):
            raise InstallError(
                "no_wheel",
                f"the add-on carries no backend wheel ({request.wheel or 'none found'}): "
                "reinstall the add-on from its release zip",
            )
        plan = torch_plan(
            request.system,
            request.machine,
            request.device == "cuda",
            request.torch_source,
            request.torch_custom,
            request.torch_requirement,
        )
        if not request.online and not plan.offline:
            raise InstallError(
                "offline",
                "Blender is offline (Preferences > System > Network > Allow Online Access): "
                "installing the backend downloads PyTorch and its packages. Allow online access, or "
                "set Torch Source to a folder of wheels; nothing was changed.",
            )
        if env_status(request.root, request.system).installing_elsewhere:
            raise InstallError("busy", f"another Blender is installing into {request.root}: wait for it to finish")
        trash = recover(request.root)  # what a Blender that died while installing left behind
        status = env_status(request.root, request.system)
        if request.update and not status.installed:
            raise InstallError("not_installed", "nothing to update: press Install Local Backend")
        if not request.update and status.installed:
            raise InstallError(
                "already_installed",
                f"a backend is already installed in {request.root}: press Update to rebuild it, or Remove",
            )
        self._check_space(request.root, "cuda" if request.device == "cuda" else "cpu")
        os.makedirs(request.root, exist_ok=True)
        self._delete_later(trash)
        self.request, self.plan, self.error = request, plan, None
        self._raw_progress, self._cuda, self._building = False, False, False  # nothing carried over from a last run
        self.state, self.progress, self.message = "running", 0.0, ""
        self._started = time.monotonic()
        self._touch_lock()
        log_path = os.path.join(request.root, LOG)
        open(log_path, "wb").close()
        # Appending, unbuffered: this process and every step's child write to the same file in order.
        self._log_file = open(log_path, "ab", buffering=0)  # closed when the install ends
        self._log_offset, self._partial_line = 0, ""
        self._log(f"MotionGPT3 backend {'update' if request.update else 'install'} into {request.root}\n")
        try:
            self._run_step("python", [request.python, "-c", CHECK_PYTHON])
        except InstallError as error:
            self._end("failed", error.message, error)

    def _check_space(self, root: str, variant: str) -> None:
        free = self.free_bytes(root)
        if free < self.needed_bytes[variant]:
            raise InstallError(
                "no_space",
                f"the {variant.upper()} backend needs {self.needed_bytes[variant] / 1e9:.0f} GB "
                f"free next to {root}; there are {free / 1e9:.1f} GB. Free some space or choose "
                "another Environment Folder; nothing was changed.",
            )

    # -- the timer body -------------------------------------------------------------------------------------------

    def poll(self) -> None:
        """Read the running step's new output and move on when it has ended; never waits."""
        if not self.running:
            return
        try:
            self._read_output()
            if time.monotonic() - self._heartbeat > HEARTBEAT_S:
                self._touch_lock()
            if self.process is None:
                return
            returncode = self.process.poll()
            if returncode is None:
                return
            self.process = None
            self._read_output()
            self._step_done(returncode, "\n".join(self._step_lines))
        except InstallError as error:
            self._end("failed", error.message, error)
        except OSError as error:  # renaming / writing in the root
            self._end("failed", f"{self.step_label}: {error}", InstallError("pip_failed", str(error)))

    def _step_done(self, returncode: int, output: str) -> None:
        request, step = self.request, self.step
        assert request is not None
        if step == "gpu":  # nvidia-smi failing means: no usable NVIDIA driver, so the CPU build
            self._cuda = nvidia_answered(returncode, output)
            self._after_gpu()
            return
        if returncode != 0:
            if step != "python" and self.free_bytes(request.root) < LOW_SPACE_BYTES:
                # The disk filled up (ensurepip, for one, reports that only as "returned non-zero exit status").
                raise InstallError(
                    "no_space",
                    f"{self.step_label}: the disk is full ({self.free_bytes(request.root) / 1024**2:.0f} MB free next "
                    f"to {request.root}; {last_error_line(output)}). Free some space or choose another Environment "
                    "Folder, then press Install again.",
                )
            if step == "python":
                raise InstallError(
                    "no_python",
                    f"{request.python} does not run (exit {returncode}: "
                    f"{last_error_line(output)}). Set Python for the Backend in the preferences.",
                )
            raise classify_failure(step, returncode, output, self.plan)
        if step == "python":
            check_python(tagged_json(output, "MOTIONGPT3_PYTHON") or {})
            self._choose_device()
        elif step == "venv":
            self._run_step("pip", self._pip_command("--upgrade", "pip"))
        elif step == "pip":
            self._raw_progress = pip_version(output) >= RAW_PROGRESS_PIP
            plan = self.plan
            assert plan is not None
            self._run_step("torch", self._pip_command(*plan.torch_args, plan.requirement))
        elif step == "torch":
            self._run_step("backend", self._pip_command(request.wheel))
        elif step == "backend":
            self._run_step("verify", [self._env_python, "-m", VERIFY_MODULE])
        elif step == "verify":
            report = tagged_json(output, "MOTIONGPT3_VERIFY")
            if report is None:
                raise classify_failure("verify", returncode, output)
            self._finish(report)

    def _choose_device(self) -> None:
        request = self.request
        assert request is not None
        if request.device == "auto":
            smi = find_nvidia_smi(request.system, request.environ or os.environ)
            if smi is not None:
                self._run_step("gpu", [smi, "-L"])
                return
        self._cuda = request.device == "cuda"
        self._after_gpu()

    def _after_gpu(self) -> None:
        request = self.request
        assert request is not None
        self.plan = torch_plan(
            request.system,
            request.machine,
            self._cuda,
            request.torch_source,
            request.torch_custom,
            request.torch_requirement,
        )
        self._log(f"PyTorch: the {self.plan.variant.upper()} build from {self.plan.source}\n")
        self._check_space(request.root, self.plan.variant)
        env_dir = os.path.join(request.root, ENV_DIR)
        if request.update:  # the working environment steps aside; it comes back unless the new one completes
            try:
                os.replace(env_dir, os.path.join(request.root, OLD_DIR))
            except OSError as error:
                raise InstallError(
                    "pip_failed", f"cannot move the installed backend aside ({error}): stop the backend and try again"
                ) from error
        self._building = True
        self._run_step("venv", [request.python, "-m", "venv", env_dir])

    @property
    def _env_python(self) -> str:
        assert self.request is not None
        return env_python(os.path.join(self.request.root, ENV_DIR), self.request.system)

    def _pip_command(self, *args: str) -> list[str]:
        assert self.plan is not None
        return pip_command(self._env_python, *self.plan.every_step_args, *args, raw_progress=self._raw_progress)

    def _run_step(self, step: str, command: list[str]) -> None:
        request = self.request
        assert request is not None
        self.step = step
        self.step_label = dict((key, text) for key, text, _ in STEPS)[step]
        if step == "torch" and self.plan is not None:
            self.step_label = f"Installing PyTorch ({self.plan.variant.upper()})"
        self._pip = PipProgress()
        self._step_lines = []
        self._update_progress()
        self._log(f"\n$ {shlex.join(command)}\n")
        environ = child_environment(request.environ if request.environ is not None else os.environ)
        try:
            self.process = subprocess.Popen(
                command,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=request.root,
                env=environ,
                **popen_options(request.system),
            )
        except OSError as error:
            if step == "gpu":  # nvidia-smi vanished or cannot run: no GPU to use
                self._cuda = False
                self._after_gpu()
                return
            if step in ("python", "venv"):
                raise InstallError(
                    "no_python",
                    f"cannot run {command[0]}: {error}. Set Python for the Backend in the "
                    "preferences to a Python 3.11-3.13 interpreter.",
                ) from error
            raise InstallError("pip_failed", f"{self.step_label}: cannot run {command[0]}: {error}") from error

    def _read_output(self) -> None:
        """New bytes of the log since the last call, split into lines (pip's \\r progress redraws count as lines)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                chunk = log.read()
        except OSError:
            return
        if not chunk:
            return
        self._log_offset += len(chunk)
        text = self._partial_line + chunk.decode("utf-8", errors="replace")
        *lines, self._partial_line = re.split(r"\r\n|\r|\n", text)
        for line in lines:
            self._step_lines.append(line)
            self._pip.feed(line)
        self._update_progress()

    def _update_progress(self) -> None:
        keys = [key for key, _, _ in STEPS]
        weights = [weight for _, _, weight in STEPS]
        index = keys.index(self.step) if self.step in keys else 0
        within = self._pip.fraction if self.step in ("pip", "torch", "backend") else 0.0
        self.progress = max(self.progress, (sum(weights[:index]) + within * weights[index]) / sum(weights))

    def _finish(self, report: dict) -> None:
        request, plan = self.request, self.plan
        assert request is not None and plan is not None
        seconds = time.monotonic() - self._started
        marker = {
            **report,
            "wheel": os.path.basename(request.wheel),
            "variant": plan.variant,
            "torch_source": plan.source,
            "made_with": request.python,
            "blender": request.blender,
            "install_seconds": round(seconds, 1),
            "installed_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        write_marker(os.path.join(request.root, ENV_DIR), marker)  # from here on the environment is installed
        self._building = False
        old = os.path.join(request.root, OLD_DIR)
        if os.path.isdir(old):
            trash = trash_path(request.root)
            os.replace(old, trash)
            self._delete_later([trash])
        size_gb = report.get("size_bytes", 0) / 1e9
        self.progress = 1.0
        self._end(
            "done",
            f"Installed: backend {report.get('backend')}, torch {report.get('torch')} ({plan.variant.upper()}), "
            f"{size_gb:.1f} GB in {seconds:.0f} s",
        )

    # -- cancel, failure, removal ---------------------------------------------------------------------------------

    def cancel(self) -> None:
        """End the running step (pip and its children) and discard the half-made environment."""
        if not self.running:
            return
        self._kill()
        updating = self.request is not None and self.request.update
        self._end(
            "cancelled", "Cancelled: " + ("the installed backend is unchanged" if updating else "nothing was installed")
        )

    def _end(self, state: str, message: str, error: InstallError | None = None) -> None:
        if self.process is not None:
            self._kill()
        self._discard_partial()
        self.state, self.message, self.error = state, message, error
        self._log(f"\n{message}\n")
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.request is not None:
            try:
                os.remove(os.path.join(self.request.root, LOCK))
            except OSError:
                pass

    def _kill(self) -> None:
        process, request = self.process, self.request
        self.process = None
        if process is None or request is None or process.poll() is not None:
            return
        command = kill_command(request.system, process.pid)
        try:
            if command is not None:
                subprocess.run(command, capture_output=True, timeout=KILL_WAIT_S, **popen_options(request.system))
            else:
                os.killpg(process.pid, signal.SIGTERM)  # the step's own process group: pip and what it started
            process.wait(KILL_WAIT_S)
        except (OSError, subprocess.TimeoutExpired):
            if command is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except OSError:
                    pass
            process.kill()
            process.wait(KILL_WAIT_S)

    def _discard_partial(self) -> None:
        """The environment being built goes to the trash, and an update's previous environment comes back."""
        request = self.request
        if request is None or not self._building:
            return
        self._building = False
        env_dir, old = os.path.join(request.root, ENV_DIR), os.path.join(request.root, OLD_DIR)
        if os.path.isdir(env_dir):
            trash = trash_path(request.root)
            try:
                os.replace(env_dir, trash)  # at once: nothing half-made is left under the name that runs
            except OSError:
                trash = env_dir  # Windows may hold a just-killed process's file a moment: delete it in place
            self._delete_later([trash])
        if os.path.isdir(old) and not os.path.isdir(env_dir):
            os.replace(old, env_dir)

    def remove(self, root: str, system: str = sys.platform) -> None:
        """Delete the installed environment (the caller stops a backend running from it first)."""
        if self.running:
            raise InstallError("busy", "an install is running: cancel it first")
        status = env_status(root, system)
        if status.installing_elsewhere:
            raise InstallError("busy", f"another Blender is installing into {root}")
        env_dir = os.path.join(root, ENV_DIR)
        if not os.path.isdir(env_dir):
            raise InstallError("not_installed", f"no backend is installed in {root}")
        trash = trash_path(root)
        os.replace(env_dir, trash)
        self._delete_later([trash])
        self.state, self.progress, self.error = "idle", 0.0, None
        self.message = f"Removed the backend from {root}"

    def _delete_later(self, paths: list[str]) -> None:
        """Delete folders on a thread (a CUDA environment is ~15,000 files); a crash half-way leaves `.trash-*`
        folders that the next install removes."""
        for path in paths:
            thread = threading.Thread(target=shutil.rmtree, args=(path,), kwargs={"ignore_errors": True}, daemon=True)
            thread.start()
            self._cleaners.append(thread)

    def wait_for_cleanup(self, timeout_s: float = 60.0) -> bool:
        """Wait for the deleting threads (tests, and Blender's exit); True when all have finished."""
        deadline = time.monotonic() + timeout_s
        for thread in self._cleaners:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._cleaners = [t for t in self._cleaners if t.is_alive()]
        return not self._cleaners

    def shutdown(self) -> None:
        """Blender exits: stop a running install (its half-made environment is removed now or by the next start)."""
        if self.running:
            self._kill()
            self._end("cancelled", "Cancelled: Blender closed")

    # -- files ----------------------------------------------------------------------------------------------------

    def _touch_lock(self) -> None:
        assert self.request is not None
        path = os.path.join(self.request.root, LOCK)
        with open(path, "w", encoding="utf-8") as lock:
            lock.write(f"{os.getpid()}\n")
        self._heartbeat = time.monotonic()

    def _log(self, text: str) -> None:
        if self._log_file is not None:
            self._log_file.write(text.encode("utf-8"))


def download_estimate(variant: str) -> str:
    return f"about {DOWNLOAD_MB[variant]:,} MB"
