"""MotionGPT3 for Blender: text-to-motion, shots, captioning, prediction and in-betweening on any mapped armature."""

from __future__ import annotations

# Legacy add-on metadata (Blender reads it without importing the module: keep it a literal). build.py writes the
# version from pyproject.toml into this dict and into blender_manifest.toml; the values here are for source trees.
bl_info = {
    "name": "MotionGPT3",
    "author": "MotionGPT3 for Blender contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "3D Viewport > Sidebar > Motion",
    "description": "Generate, caption, predict and in-between motion with a local MotionGPT3 backend",
    "category": "Animation",
}


def register() -> None:
    from . import vendor

    vendor.ensure_zmq()  # before anything imports zmq (legacy installs unpack the bundled wheel)
    from . import install_ops, mapping_editor, operators, panel, properties, shot_ui

    properties.register()
    operators.register()
    install_ops.register()
    panel.register()
    mapping_editor.register()  # after panel: its sub-panel needs MOTION_PT_panel
    shot_ui.register()  # after panel: its sub-panel needs MOTION_PT_panel


def unregister() -> None:
    from . import install_ops, mapping_editor, operators, panel, properties, shot_ui

    shot_ui.unregister()
    mapping_editor.unregister()
    panel.unregister()
    install_ops.unregister()
    operators.unregister()
    properties.unregister()
