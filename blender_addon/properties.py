"""Scene settings of the Motion panel and the add-on preferences (backend address, keys, local backend)."""

# Blender declares properties as annotations holding calls (`prompt: StringProperty(...)`), which mypy rejects.
# mypy: disable-error-code="valid-type"

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .local_backend import LOCAL_BACKEND


class MotionSettings(bpy.types.PropertyGroup):
    """Per-scene request settings (`scene.motiongpt3`)."""

    prompt: StringProperty(name="Prompt", description="What the person does", default="a person walks forward")
    length_unit: EnumProperty(
        name="Length",
        items=[("SECONDS", "Seconds", "Length in seconds"), ("FRAMES", "Frames", "Length in scene frames")],
        default="SECONDS",
    )
    seconds: FloatProperty(
        name="Seconds", default=4.0, min=0.2, max=9.75, description="Up to 9.75 s (196 frames at 20 fps)"
    )
    frames: IntProperty(name="Frames", default=96, min=2, max=2000, description="Length in frames at the scene rate")
    seed: IntProperty(name="Seed", default=0, min=0)
    random_seed: BoolProperty(name="Random", default=False, description="Draw a new seed for every request")
    candidates: IntProperty(name="Candidates", default=1, min=1, max=8, description="Motions per request")
    guidance: FloatProperty(name="Guidance", default=0.0, min=0.0, max=20.0, description="0 = the model's default")
    use_current_frame: BoolProperty(name="At Current Frame", default=True, description="Start at the current frame")
    start_frame: IntProperty(name="Start Frame", default=1)
    root_motion: BoolProperty(name="Root Motion", default=True, description="Off: the pelvis stays over its start")
    plant_feet: BoolProperty(
        name="Plant Feet",
        default=False,
        description="Hold feet still while the motion's contact labels say they are planted (knees re-solved)",
    )
    create_armature: BoolProperty(
        name="Create SMPL-22 Armature",
        default=True,
        description="Generate onto a new SMPL-22 armature when none is active",
    )
    use_scene_range: BoolProperty(name="Scene Range", default=True, description="Read the scene's frame range")
    read_start: IntProperty(name="From", default=1)
    read_end: IntProperty(name="To", default=100)
    predict_frames: IntProperty(name="Predict Frames", default=48, min=2, max=2000)
    gap_start: IntProperty(name="Fill From", default=40, description="First frame the model fills in")
    gap_end: IntProperty(name="Fill To", default=60, description="Last frame the model fills in")
    inbetween_prompt: StringProperty(
        name="In-between Prompt",
        default="",
        description="Optional: what the person does in the filled frames (empty: the model fills from the poses alone)",
    )
    unit_scale: FloatProperty(
        name="Metres per Unit", default=0.0, min=0.0, description="0 = from the rig's bone map (1 for SMPL-22 rigs)"
    )
    last_caption: StringProperty(name="Caption", default="")


class MotionPreferences(bpy.types.AddonPreferences):
    """Where the backend is, how to install and start a local one."""

    bl_idname = __package__

    address: StringProperty(name="Backend Address", default="tcp://127.0.0.1:5555")
    server_key_file: StringProperty(
        name="Server Public Key", subtype="FILE_PATH", description="CURVE public key of a remote backend (empty: none)"
    )
    client_key_file: StringProperty(
        name="Client Secret Key", subtype="FILE_PATH", description="This client's CURVE secret key file"
    )
    backend_source: EnumProperty(
        name="Local Backend",
        items=[
            ("INSTALLED", "Installed", "The backend that Install Local Backend put in its own environment"),
            ("COMMAND", "Command", "A backend command of your own (e.g. a development checkout's environment)"),
        ],
        default="INSTALLED",
    )
    start_local: BoolProperty(
        name="Start Automatically", default=False, description="Start the local backend on the first request"
    )
    command: StringProperty(
        name="Command",
        default="motiongpt3",
        description="The backend command, e.g. motiongpt3 or /path/to/env/bin/python -m backend.cli",
    )
    checkpoint: StringProperty(name="Checkpoint", subtype="FILE_PATH", description="Empty: the embedded demo model")
    device: EnumProperty(
        name="Device",
        items=[(d, d.upper() if d != "auto" else "Auto", "") for d in ("auto", "cpu", "cuda", "mps")],
        default="auto",
    )
    # Install Local Backend (advanced: the defaults suit most computers).
    show_install_options: BoolProperty(name="Install Options", default=False)
    env_folder: StringProperty(
        name="Environment Folder",
        subtype="DIR_PATH",
        description="Where the backend's environment goes (empty: 'motiongpt3' beside Blender's per-version user "
        "folders, shared by every Blender version)",
    )
    env_python: StringProperty(
        name="Python for the Backend",
        subtype="FILE_PATH",
        description="The Python 3.11-3.13 that makes the environment (empty: Blender's own; nothing is installed "
        "into it)",
    )
    install_device: EnumProperty(
        name="PyTorch Build",
        items=[
            ("auto", "Automatic", "CUDA when an NVIDIA driver answers (nvidia-smi), otherwise CPU"),
            ("cpu", "CPU", "The CPU build (small download)"),
            ("cuda", "CUDA", "The CUDA build for NVIDIA GPUs (a few GB)"),
        ],
        default="auto",
    )
    torch_source: EnumProperty(
        name="Torch Source",
        items=[
            ("auto", "PyTorch", "PyTorch's own index for the build (download.pytorch.org; PyPI on macOS)"),
            ("pip", "pip's Configuration", "Wherever pip is configured to look (pip.conf, PIP_INDEX_URL)"),
            ("custom", "Custom", "An index URL for torch, or a folder of wheels for every package (no download)"),
        ],
        default="auto",
    )
    torch_custom: StringProperty(name="Index URL or Folder", description="For Torch Source Custom")
    torch_requirement: StringProperty(
        name="Torch Requirement", default="torch>=2.4", description="What pip installs for torch"
    )

    def draw(self, context: bpy.types.Context) -> None:
        from . import install_ops  # imports this module

        layout = self.layout
        layout.prop(self, "address")
        layout.prop(self, "server_key_file")
        layout.prop(self, "client_key_file")
        box = layout.box()
        box.label(text="Local Backend", icon="CONSOLE")
        install_ops.draw_local_backend(box, self, compact=False)
        box.prop(self, "backend_source", expand=True)
        col = box.column()
        if self.backend_source == "COMMAND":
            col.prop(self, "command")
        col.prop(self, "checkpoint")
        col.prop(self, "device")
        col.prop(self, "start_local")
        for line in LOCAL_BACKEND.log_tail():
            col.label(text=line)
        box.prop(
            self,
            "show_install_options",
            icon="DISCLOSURE_TRI_DOWN" if self.show_install_options else "DISCLOSURE_TRI_RIGHT",
            emboss=False,
        )
        if self.show_install_options:
            col = box.column()
            col.prop(self, "env_folder")
            col.prop(self, "env_python")
            col.prop(self, "install_device")
            col.prop(self, "torch_source")
            sub = col.column()
            sub.enabled = self.torch_source == "custom"
            sub.prop(self, "torch_custom")
            col.prop(self, "torch_requirement")


def preferences(context: bpy.types.Context | None = None) -> MotionPreferences | None:
    """This add-on's preferences (legacy and extension installs use different module names: `__package__`)."""
    prefs = (context or bpy.context).preferences
    addon = prefs.addons.get(__package__ or "") if prefs is not None else None
    return addon.preferences if addon is not None else None


def scene_settings(context: bpy.types.Context) -> Any:
    """The scene's `MotionSettings` (`scene.motiongpt3`, registered below)."""
    if context.scene is None:
        raise RuntimeError("no active scene")
    return context.scene.motiongpt3  # type: ignore[attr-defined]


CLASSES = (MotionSettings, MotionPreferences)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    # fake-bpy-module types bpy.props functions as returning None; at run time they return the property definition.
    bpy.types.Scene.motiongpt3 = bpy.props.PointerProperty(type=MotionSettings)  # type: ignore[attr-defined,func-returns-value]


def unregister() -> None:
    del bpy.types.Scene.motiongpt3  # type: ignore[attr-defined]
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
