"""Install, Update and Remove the local backend from Blender, and the command Start runs: operators, the install's
timer, and the local-backend box the preferences and the Motion panel draw (the work is backend_install.Installer)."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import bpy

from .backend_env import (
    DOWNLOAD_MB,
    EnvStatus,
    InstallError,
    default_root,
    env_status,
    find_backend_wheel,
    wheel_version,
)
from .backend_install import Installer, InstallRequest
from .local_backend import LOCAL_BACKEND
from .properties import preferences

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

INSTALLER = Installer()
TICK_S = 0.2
HERE = os.path.dirname(os.path.abspath(__file__))
# The zip carries the backend wheel in runtime/ (build.py addon); a source checkout finds `build.py wheel`'s in dist/.
WHEEL_FOLDERS = [os.path.join(HERE, "runtime"), os.path.join(os.path.dirname(HERE), "dist")]


def env_root(prefs: Any) -> str:
    """The environment root: the preferences' folder, else the one every Blender version of this user shares."""
    if prefs is not None and prefs.env_folder:
        return os.path.abspath(bpy.path.abspath(prefs.env_folder))
    return default_root(bpy.utils.resource_path("USER"))


def carried_wheel() -> str | None:
    return find_backend_wheel(WHEEL_FOLDERS)


def install_request(prefs: Any, update: bool) -> InstallRequest:
    """What the preferences ask for; the environment is made by Blender's own Python unless another is set."""
    python = bpy.path.abspath(prefs.env_python) if prefs.env_python else sys.executable
    return InstallRequest(
        root=env_root(prefs),
        python=python,
        wheel=carried_wheel() or "",
        device=prefs.install_device,
        torch_source=prefs.torch_source,
        torch_custom=bpy.path.abspath(prefs.torch_custom) if "://" not in prefs.torch_custom else prefs.torch_custom,
        torch_requirement=prefs.torch_requirement,
        update=update,
        online=bool(bpy.app.online_access),
        blender=bpy.app.version_string,
    )


_status_cache: dict[str, tuple[float, EnvStatus]] = {}


def current_status(prefs: Any, max_age_s: float = 0.5) -> EnvStatus:
    """The environment's status (a few small file reads), cached briefly for the UI's redraws."""
    root = env_root(prefs)
    cached = _status_cache.get(root)
    if cached is not None and time.monotonic() - cached[0] < max_age_s:
        return cached[1]
    status = env_status(root, sys.platform, own_lock=INSTALLER.running)
    _status_cache.clear()
    _status_cache[root] = (time.monotonic(), status)
    return status


def local_backend_command(prefs: Any) -> list[str]:
    """The `motiongpt3 serve` command line Start runs: the installed environment's, or the preferences' command."""
    if prefs.backend_source == "COMMAND":
        return LOCAL_BACKEND.command(prefs.command, prefs.address, prefs.checkpoint, prefs.device)
    status = current_status(prefs, max_age_s=0.0)
    if INSTALLER.running:
        raise InstallError("busy", "the local backend is being installed: wait for it to finish")
    if not status.installed:
        raise InstallError("not_installed", "no local backend is installed: press Install Local Backend first")
    if status.problem:
        raise InstallError("not_installed", f"the local backend cannot run: {status.problem}")
    base = [status.python, "-m", "backend.cli"]
    return LOCAL_BACKEND.command(base, prefs.address, bpy.path.abspath(prefs.checkpoint), prefs.device)


def install_tick() -> float | None:
    """The install's `bpy.app.timers` function: reads the running step's output, redraws the places that show it."""
    INSTALLER.poll()
    _status_cache.clear()
    wm = bpy.context.window_manager
    for window in wm.windows if wm is not None else ():
        for area in window.screen.areas if window.screen is not None else ():
            if area.type in ("PREFERENCES", "VIEW_3D"):
                area.tag_redraw()
    return TICK_S if INSTALLER.running else None


def stop_install_timer() -> None:
    if bpy.app.timers.is_registered(install_tick):
        bpy.app.timers.unregister(install_tick)


def _confirm_text(prefs: Any, update: bool) -> str:
    variant = "cuda" if prefs.install_device == "cuda" else "cpu"
    size = f"about {DOWNLOAD_MB['cpu']} MB (CPU) or {DOWNLOAD_MB['cuda'] / 1000:.1f} GB (NVIDIA GPU)"
    if variant == "cuda":
        size = f"about {DOWNLOAD_MB['cuda'] / 1000:.1f} GB"
    verb = "Rebuild" if update else "Install"
    return (
        f"{verb} the local backend: download PyTorch and the backend's packages ({size}) from the internet into "
        f"{env_root(prefs)} (1.3 GB on disk for the CPU build, about 5 GB for CUDA). Nothing is installed into "
        "Blender's own Python."
    )


def _start_install(op: bpy.types.Operator, context: bpy.types.Context, update: bool) -> set[OperatorReturnItems]:
    prefs = preferences(context)
    if prefs is None:
        return {"CANCELLED"}
    try:
        request = install_request(prefs, update)
        if update and not INSTALLER.running:
            LOCAL_BACKEND.stop()  # it may run from the environment that is about to be replaced
        INSTALLER.start(request)
    except InstallError as error:
        INSTALLER.refuse(error)
        op.report({"ERROR"}, error.message)
        return {"CANCELLED"}
    _status_cache.clear()
    if INSTALLER.state == "failed" and INSTALLER.error is not None:  # failed at once (e.g. the Python does not run)
        op.report({"ERROR"}, INSTALLER.error.message)
        return {"CANCELLED"}
    if not bpy.app.timers.is_registered(install_tick):
        bpy.app.timers.register(install_tick, first_interval=0.0, persistent=True)
    return {"FINISHED"}


class MOTION_OT_install_backend(bpy.types.Operator):
    """Download PyTorch and install the MotionGPT3 backend into an environment of its own (asks first)"""

    bl_idname = "motion.install_backend"
    bl_label = "Install Local Backend"

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        prefs = preferences(context)
        if prefs is None or context.window_manager is None:
            return {"CANCELLED"}
        message = _confirm_text(prefs, update=False)
        return context.window_manager.invoke_confirm(
            self, event, title="Install Local Backend", message=message, confirm_text="Download and Install"
        )

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        return _start_install(self, context, update=False)


class MOTION_OT_update_backend(bpy.types.Operator):
    """Rebuild the local backend's environment with this add-on's backend (the installed one stays until the new
    one is complete)"""

    bl_idname = "motion.update_backend"
    bl_label = "Update Local Backend"

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        prefs = preferences(context)
        if prefs is None or context.window_manager is None:
            return {"CANCELLED"}
        message = _confirm_text(prefs, update=True)
        return context.window_manager.invoke_confirm(
            self, event, title="Update Local Backend", message=message, confirm_text="Download and Update"
        )

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        return _start_install(self, context, update=True)


class MOTION_OT_cancel_install(bpy.types.Operator):
    """Stop installing (pip is ended and the half-made environment deleted; an update keeps the installed one)"""

    bl_idname = "motion.cancel_install"
    bl_label = "Cancel Install"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        INSTALLER.cancel()
        _status_cache.clear()
        return {"FINISHED"}


class MOTION_OT_remove_backend(bpy.types.Operator):
    """Delete the local backend's environment (PyTorch and the backend; asks first)"""

    bl_idname = "motion.remove_backend"
    bl_label = "Remove Local Backend"

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        prefs = preferences(context)
        if prefs is None or context.window_manager is None:
            return {"CANCELLED"}
        message = f"Delete the local backend in {env_root(prefs)}? Install it again to use it."
        return context.window_manager.invoke_confirm(
            self, event, title="Remove Local Backend", message=message, confirm_text="Remove", icon="WARNING"
        )

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        prefs = preferences(context)
        if prefs is None:
            return {"CANCELLED"}
        LOCAL_BACKEND.stop()
        try:
            INSTALLER.remove(env_root(prefs))
        except (InstallError, OSError) as error:
            message = error.message if isinstance(error, InstallError) else f"could not remove the backend: {error}"
            self.report({"ERROR"}, message)
            return {"CANCELLED"}
        _status_cache.clear()
        return {"FINISHED"}


def _progress_row(layout: bpy.types.UILayout, text: str, factor: float) -> bpy.types.UILayout:
    row = layout.row(align=True)
    if hasattr(row, "progress"):  # UILayout.progress: Blender 4.0+
        row.progress(factor=factor, type="BAR", text=text)
    else:
        row.label(text=f"{text} {factor:.0%}")
    return row


def draw_local_backend(layout: bpy.types.UILayout, prefs: Any, compact: bool) -> None:
    """Install progress (with Cancel and the log's tail), or what is installed with Start / Stop (and, in the
    preferences, Update / Remove), or the Install button; then the last install's outcome."""
    if prefs is None:
        return
    if INSTALLER.running:
        text, progress = INSTALLER.summary()
        _progress_row(layout, text, progress).operator("motion.cancel_install", text="", icon="CANCEL")
        for line in INSTALLER.log_tail(3 if compact else 6):
            layout.label(text=line[:160])
        return
    local_command = prefs.backend_source == "COMMAND"
    status = current_status(prefs)
    if status.installing_elsewhere:
        layout.label(text="Another Blender is installing the local backend", icon="SORTTIME")
    elif status.installed or local_command:
        if local_command:
            layout.label(text=f"Local backend: {prefs.command}", icon="CONSOLE")
        else:
            info = status.info
            size = info.get("size_bytes", 0) / 1e9
            layout.label(
                text=f"Local backend {info.get('backend', '?')} · torch {info.get('torch', '?')} "
                f"({str(info.get('variant', '?')).upper()}) · {size:.1f} GB",
                icon="ERROR" if status.problem else "CHECKMARK",
            )
            if status.problem:
                layout.label(text=status.problem)
            carried = carried_wheel()
            if carried and wheel_version(carried) != info.get("backend"):
                layout.label(text=f"This add-on brings backend {wheel_version(carried)}: press Update", icon="INFO")
        row = layout.row(align=True)
        row.operator("motion.start_backend", text="Restart" if LOCAL_BACKEND.running else "Start", icon="PLAY")
        row.operator("motion.stop_backend", text="Stop", icon="PAUSE")
        if not compact and status.installed:
            row = layout.row(align=True)
            row.operator("motion.update_backend", text="Update", icon="FILE_REFRESH")
            row.operator("motion.remove_backend", text="Remove", icon="TRASH")
    else:
        layout.operator("motion.install_backend", icon="IMPORT")
        if not bpy.app.online_access:
            layout.label(text="Blender is offline: Preferences > System > Network > Allow Online Access", icon="ERROR")
    if INSTALLER.message:
        layout.label(text=INSTALLER.message, icon="ERROR" if INSTALLER.error else "INFO")
        if INSTALLER.error is not None and not compact:
            for line in INSTALLER.log_tail(4):
                layout.label(text=line[:160])
    if not compact:
        layout.label(text=f"Environment: {status.root}")


CLASSES = (MOTION_OT_install_backend, MOTION_OT_update_backend, MOTION_OT_cancel_install, MOTION_OT_remove_backend)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    stop_install_timer()
    INSTALLER.shutdown()  # disabling the add-on mid-install cancels it
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
