"""Run by tests/test_addon_package.py in a fresh Blender process: install the add-on zip both ways, report as JSON.

usage: python blender_addon_install_check.py ZIP   (BLENDER_USER_* point at a temporary directory)
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import sys


def state(module: str) -> dict:
    import addon_utils
    import bpy

    loaded, enabled = addon_utils.check(module)
    mod = sys.modules.get(module)
    return {
        "loaded": bool(loaded),
        "enabled": bool(enabled),
        "panel": hasattr(bpy.types, "MOTION_PT_panel"),
        "operators": sorted(n for n in dir(bpy.ops.motion) if not n.startswith("_")),
        "settings": hasattr(bpy.types.Scene, "motiongpt3"),
        "file": getattr(mod, "__file__", None),
        "version": list(getattr(mod, "bl_info", {}).get("version", ())),
        "timer": bool(mod) and bpy.app.timers.is_registered(sys.modules[module + ".operators"].timer_tick)
        if module + ".operators" in sys.modules
        else False,
    }


class HideEnvironmentZmq:
    """Import finder that hides a pyzmq installed next to bpy (Blender itself ships none): the add-on must bring it."""

    def __init__(self, hidden: list[str]):
        self.hidden = {os.path.realpath(p) for p in hidden}

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        if name != "zmq":
            return None
        entries = [p for p in sys.path if os.path.realpath(p) not in self.hidden]
        spec = importlib.machinery.PathFinder.find_spec(name, entries)
        if spec is None:
            raise ModuleNotFoundError("No module named 'zmq'", name=name)
        return spec


def main() -> None:
    zip_path = sys.argv[1]
    import bpy

    site = [p for p in sys.path if p.endswith("site-packages") and os.path.isdir(os.path.join(p, "zmq"))]
    sys.meta_path.insert(0, HideEnvironmentZmq(site))

    bpy.ops.wm.read_factory_settings(use_empty=True)
    report: dict = {"blender": list(bpy.app.version), "python": list(sys.version_info[:2])}

    # Legacy add-on: bl_info, the add-on unpacks its pyzmq wheel into _vendor/.
    report["legacy_install"] = sorted(bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True))
    report["legacy_enable"] = sorted(bpy.ops.preferences.addon_enable(module="motiongpt3_addon"))
    report["legacy"] = state("motiongpt3_addon")
    import zmq

    report["legacy_zmq"] = zmq.__file__
    report["top_level_shared"] = "shared" in sys.modules
    try:  # the vendored client imports (its protocol, shared.motion) from inside the package, and talks
        client = importlib.import_module("motiongpt3_addon.shared.client")
        with client.MotionClient("tcp://127.0.0.1:9") as motion_client:
            report["client_request"] = bool(motion_client.submit("echo", {}))
        report["client_module"] = client.__name__
    except Exception as error:
        report["client_module"] = f"{type(error).__name__}: {error}"
    report["top_level_shared_after_client"] = "shared" in sys.modules
    ops = sys.modules["motiongpt3_addon.operators"]
    ops.ensure_timer()  # as a request would; disabling must remove it
    report["legacy_timer_before_disable"] = bpy.app.timers.is_registered(ops.timer_tick)
    bpy.ops.preferences.addon_disable(module="motiongpt3_addon")
    report["legacy_disabled"] = state("motiongpt3_addon")
    report["legacy_disabled"]["timer"] = bpy.app.timers.is_registered(ops.timer_tick)
    try:
        bpy.ops.preferences.addon_remove(module="motiongpt3_addon")
    except RuntimeError:
        pass  # headless: files are removed, then the operator fails to redraw (BLENDER_NOTES.md section 1.3)
    report["legacy_removed"] = not os.path.exists(os.path.dirname(report["legacy"]["file"] or "/nonexistent"))
    for name in [m for m in sys.modules if m == "zmq" or m.startswith("zmq.")]:
        del sys.modules[name]  # the extension must bring its own pyzmq, not reuse the legacy _vendor copy
    sys.path[:] = [p for p in sys.path if "_vendor" not in p]

    # Extension: the manifest's wheels are installed by Blender.
    module = "bl_ext.user_default.motiongpt3_addon"
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    report["extension_install"] = sorted(result)
    report["extension"] = state(module)
    import zmq

    report["extension_zmq"] = zmq.__file__
    repos = [r.module for r in bpy.context.preferences.extensions.repos]
    bpy.ops.extensions.package_uninstall(repo_index=repos.index("user_default"), pkg_id="motiongpt3_addon")
    report["extension_uninstalled"] = state(module)
    print("REPORT " + json.dumps(report), flush=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        sys.stdout.flush()
        os._exit(0)  # bpy 4.2/4.5 hang or crash at exit with a live timer (BLENDER_NOTES.md section 8)
