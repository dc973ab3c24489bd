"""Run by tests/test_backend_install_blender_e2e.py in a fresh Blender (bpy) process: from the add-on zip to a
generated Action through the add-on's own operators, as an animator would press them; reports JSON.

usage: python blender_backend_install_check.py install ZIP TORCH_REQUIREMENT PORT OUT_DIR
       python blender_backend_install_check.py reuse ZIP PORT
(BLENDER_USER_* and MOTIONGPT3_BACKEND_HOME point at temporary folders.) `install` installs the zip as an extension,
presses Install Local Backend (torch as this machine's pip is configured), Start, and Generate, checks the motion
against the installed environment's own `motiongpt3 generate`, then starts an Update and cancels it. `reuse` is a
second Blender (another version): it installs the zip as a legacy add-on, finds that environment, starts it,
connects, and presses Remove.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback

MODULES = {"install": "bl_ext.user_default.motiongpt3_addon", "reuse": "motiongpt3_addon"}


def drive(tick, until, timeout_s: float, what: str) -> float:
    """Call a timer body as Blender would until `until()`; returns the seconds it took."""
    started = time.monotonic()
    while not until():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what}: not done after {timeout_s:.0f} s")
        tick()
        time.sleep(0.05)
    return time.monotonic() - started


def addon_modules(module: str):
    return (sys.modules[f"{module}.install_ops"], sys.modules[f"{module}.operators"], sys.modules[module])


def connect(ops, report: dict, key: str) -> None:
    import bpy

    assert bpy.ops.motion.start_backend() == {"FINISHED"}
    report[f"{key}_command"] = ops.LOCAL_BACKEND.process.args if ops.LOCAL_BACKEND.process else None
    report[f"{key}_seconds"] = drive(
        ops.timer_tick, lambda: ops.CONTROLLER.server_label() != "", 180, "the backend answering"
    )
    report[f"{key}_state"] = ops.CONTROLLER.state
    report[f"{key}_label"] = ops.CONTROLLER.server_label()


def install(zip_path: str, requirement: str, port: str, out_dir: str, report: dict) -> None:
    import bpy
    import numpy as np

    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    report["extension_install"] = sorted(result)
    module = MODULES["install"]
    install_ops, ops, _ = addon_modules(module)
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.torch_source, prefs.torch_requirement = "pip", requirement
    prefs.address = f"tcp://127.0.0.1:{port}"
    report["wheel"] = install_ops.carried_wheel()
    report["root"] = install_ops.env_root(prefs)

    # Offline first: refused, nothing made.
    bpy.context.preferences.system.use_online_access = False
    try:
        bpy.ops.motion.install_backend()
        report["offline"] = "not refused"
    except RuntimeError as error:
        report["offline"] = str(error)
    report["offline_root_exists"] = os.path.exists(report["root"])

    # Install Local Backend, as confirmed in its dialog.
    bpy.context.preferences.system.use_online_access = True
    progress: list[float] = []
    assert bpy.ops.motion.install_backend() == {"FINISHED"}

    def tick() -> None:
        install_ops.install_tick()
        progress.append(install_ops.INSTALLER.progress)

    report["install_seconds"] = drive(tick, lambda: not install_ops.INSTALLER.running, 900, "the install")
    report["install_state"] = install_ops.INSTALLER.state
    report["install_message"] = install_ops.INSTALLER.message
    report["install_log"] = install_ops.INSTALLER.log_tail(12)
    report["progress_monotonic"] = progress == sorted(progress) and progress[-1] == 1.0
    report["timer_left"] = bpy.app.timers.is_registered(install_ops.install_tick) and install_ops.install_tick()
    status = install_ops.current_status(prefs, max_age_s=0)
    report["marker"] = status.info
    report["env_python"] = status.python

    # Start: the panel says connected, with the model and the device.
    connect(ops, report, "start")

    # Generate through the panel's operator onto a new SMPL-22 armature.
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    settings = scene.motiongpt3
    settings.prompt, settings.length_unit, settings.frames, settings.seed = "a person walks forward", "FRAMES", 40, 5
    settings.use_current_frame, settings.start_frame = False, 1
    results = sys.modules[f"{module}.results"]
    captured = {}
    real_write = results.write_takes

    def keep(job, takes):
        captured["motions"] = np.array(job.arrays["motions"])
        return real_write(job, takes)

    results.write_takes = keep
    try:
        assert bpy.ops.motion.generate() == {"FINISHED"}
        (job,) = ops.CONTROLLER.active()
        report["generate_seconds"] = drive(
            ops.timer_tick, lambda: job.status in ("done", "error", "cancelled"), 300, "the generation"
        )
    finally:
        results.write_takes = real_write
    report["job"] = [job.status, job.message]
    obj = bpy.context.view_layer.objects.active
    action = obj.animation_data.action if obj and obj.animation_data else None
    report["action"] = action.name if action else None
    report["action_range"] = list(action.frame_range) if action else None
    humanml3d = sys.modules[f"{module}.shared.motion.humanml3d"]
    axes = sys.modules[f"{module}.shared.motion.axes"]
    pelvis = axes.yup_to_zup(humanml3d.features_to_joints(captured["motions"][0])[:, 0])
    keyed = []
    for frame in range(1, 41):
        scene.frame_set(frame)
        keyed.append(list(obj.matrix_world @ obj.pose.bones["pelvis"].head))
    report["pelvis_error_m"] = float(np.abs(np.array(keyed) - pelvis[:40]).max())
    report["pelvis_travel_m"] = float(np.linalg.norm(pelvis[-1, :2] - pelvis[0, :2]))
    # The installed environment's own command line, same prompt and seed: the served motion must be its motion.
    cli = subprocess.run(
        [
            *(
                status.python,
                "-m",
                "backend.cli",
                "generate",
                "a person walks forward",
                "--frames",
                "40",
                "--seed",
                "5",
            ),
            *("-o", os.path.join(out_dir, "cli")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report["cli_returncode"] = cli.returncode
    if cli.returncode == 0:
        report["cli_difference"] = float(
            np.abs(np.load(os.path.join(out_dir, "cli.npy")) - captured["motions"][0]).max()
        )
    else:
        report["cli_error"] = cli.stderr[-2000:]
    report["motion_range"] = float(np.ptp(captured["motions"][0]))

    # Update, cancelled mid-way (while pip installs torch): the installed backend is kept as it was.
    marker_before = json.dumps(status.info, sort_keys=True)
    assert bpy.ops.motion.update_backend() == {"FINISHED"}
    report["update_stopped_backend"] = not ops.LOCAL_BACKEND.running
    installer = install_ops.INSTALLER
    try:
        drive(install_ops.install_tick, lambda: installer.step == "torch" or not installer.running, 300, "the update")
    finally:
        report["update_progress"] = [installer.state, installer.step, installer.message, installer.log_tail(12)]
    time.sleep(1.0)
    install_ops.install_tick()
    assert bpy.ops.motion.cancel_install() == {"FINISHED"}
    report["update_cancel_message"] = install_ops.INSTALLER.message
    report["cleanup_done"] = install_ops.INSTALLER.wait_for_cleanup(120)
    after = install_ops.current_status(prefs, max_age_s=0)
    report["update_cancel_kept"] = after.installed and json.dumps(after.info, sort_keys=True) == marker_before
    check = subprocess.run([after.python, "-c", "import backend.cli, torch"], capture_output=True, text=True)
    report["kept_env_runs"] = check.returncode == 0
    report["root_after_cancel"] = sorted(os.listdir(report["root"]))
    ops.CONTROLLER.close()
    ops.stop_timer()
    install_ops.stop_install_timer()


def reuse(zip_path: str, port: str, report: dict) -> None:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    report["legacy_install"] = sorted(bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True))
    bpy.ops.preferences.addon_enable(module=MODULES["reuse"])
    install_ops, ops, _ = addon_modules(MODULES["reuse"])
    prefs = bpy.context.preferences.addons[MODULES["reuse"]].preferences
    prefs.address = f"tcp://127.0.0.1:{port}"
    status = install_ops.current_status(prefs, max_age_s=0)
    report["found"] = status.installed
    report["env_python"] = status.python
    report["marker"] = status.info
    connect(ops, report, "start")
    ops.LOCAL_BACKEND.stop()
    ops.CONTROLLER.close()
    ops.stop_timer()
    assert bpy.ops.motion.remove_backend() == {"FINISHED"}
    report["cleanup_done"] = install_ops.INSTALLER.wait_for_cleanup(120)
    report["removed"] = not install_ops.current_status(prefs, max_age_s=0).installed
    report["root_after_remove"] = sorted(os.listdir(status.root))


def main() -> None:
    role = sys.argv[1]
    report: dict = {"role": role}
    import bpy

    report["blender"] = list(bpy.app.version)
    try:
        if role == "install":
            install(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], report)
        else:
            reuse(sys.argv[2], sys.argv[3], report)
    except Exception:
        report["exception"] = traceback.format_exc()
    print("REPORT " + json.dumps(report), flush=True)


def stop_children() -> None:
    """Leave no backend or pip running behind this process (os._exit below skips the add-on's atexit handlers)."""
    for module in MODULES.values():
        local = sys.modules.get(f"{module}.local_backend")
        if local is not None:
            local.LOCAL_BACKEND.stop()
        install_ops = sys.modules.get(f"{module}.install_ops")
        if install_ops is not None:
            install_ops.INSTALLER.shutdown()
            install_ops.INSTALLER.wait_for_cleanup(60)


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_children()
        sys.stdout.flush()
        os._exit(0)  # bpy 4.2/4.5 hang or crash at exit with a live timer (BLENDER_NOTES.md section 8)
