"""The N-panel (3D Viewport sidebar, tab "Motion"): request settings, the four tasks, status, caption, candidates."""

from __future__ import annotations

import bpy

from . import armature, install_ops, results
from .operators import CONTROLLER
from .properties import preferences, scene_settings


def _format_eta(eta_s: float | None) -> str:
    return "" if eta_s is None else f" · ETA {eta_s:.0f} s"


class MOTION_PT_panel(bpy.types.Panel):
    bl_label = "MotionGPT3"
    bl_idname = "MOTION_PT_panel"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Motion"

    def draw(self, context: bpy.types.Context) -> None:
        s = scene_settings(context)
        obj = context.active_object
        layout = self.layout
        if layout is None:
            return

        row = layout.row()
        server = CONTROLLER.server_label()
        row.label(
            text=f"Backend: {CONTROLLER.state}" + (f" · {server}" if server else ""),
            icon="LINKED" if CONTROLLER.state == "connected" else "UNLINKED",
        )
        row.operator("motion.connect", text="", icon="FILE_REFRESH")
        if CONTROLLER.state != "connected" or install_ops.INSTALLER.running:
            install_ops.draw_local_backend(layout.box(), preferences(context), compact=True)

        col = layout.column(align=True)
        col.label(
            text=f"Target: {obj.name if obj else 'none'}" + ("" if armature.is_smpl_armature(obj) else " (not SMPL-22)")
        )
        col.prop(s, "create_armature")
        col.operator("motion.create_armature", icon="ARMATURE_DATA")

        box = layout.box()
        box.prop(s, "prompt", text="")
        row = box.row(align=True)
        row.prop(s, "length_unit", text="")
        row.prop(s, "seconds" if s.length_unit == "SECONDS" else "frames", text="")
        row = box.row(align=True)
        row.prop(s, "seed")
        row.prop(s, "random_seed", toggle=True)
        box.prop(s, "candidates")
        box.prop(s, "guidance")
        row = box.row(align=True)
        row.prop(s, "use_current_frame")
        sub = row.row()
        sub.enabled = not s.use_current_frame
        sub.prop(s, "start_frame", text="")
        box.prop(s, "root_motion")
        box.operator("motion.generate", icon="PLAY")

        box = layout.box()
        box.prop(s, "use_scene_range")
        row = box.row(align=True)
        row.enabled = not s.use_scene_range
        row.prop(s, "read_start")
        row.prop(s, "read_end")
        box.prop(s, "unit_scale")
        row = box.row(align=True)
        row.operator("motion.caption")
        row.operator("motion.caption_all", text="Caption All")
        row = box.row(align=True)
        row.prop(s, "predict_frames")
        row.operator("motion.predict")
        row = box.row(align=True)
        row.prop(s, "gap_start")
        row.prop(s, "gap_end")
        box.operator("motion.inbetween")
        box.prop(s, "inbetween_prompt", text="", icon="TEXT")
        box.operator("motion.inbetween_keys", icon="KEYFRAME")

        text, progress, eta = CONTROLLER.summary()
        row = layout.row(align=True)
        if CONTROLLER.active():
            if hasattr(row, "progress"):  # UILayout.progress: Blender 4.0+
                row.progress(factor=progress, type="BAR", text=text + _format_eta(eta))
            else:
                row.label(text=f"{text} {progress:.0%}{_format_eta(eta)}")
            row.operator("motion.cancel", text="", icon="CANCEL")
        else:
            row.label(text=text, icon="ERROR" if CONTROLLER.last_error else "INFO")

        if s.last_caption:
            row = layout.row(align=True)
            row.label(text=s.last_caption)
            row.operator("motion.copy_caption", text="", icon="COPYDOWN")

        group = obj.get("motiongpt3_last_group") if obj is not None else None
        if obj is not None and group:
            candidates = sorted(
                (a for a in bpy.data.actions if a.get(results.PROP_GROUP) == group),
                key=lambda a: a.get(results.PROP_CANDIDATE, 0),
            )
            if len(candidates) > 1:
                col = layout.column(align=True)
                col.label(text="Candidates")
                current = obj.animation_data.action if obj.animation_data else None
                for action in candidates:
                    op = col.operator(
                        "motion.use_candidate", text=action.name, depress=action == current, icon="ACTION"
                    )
                    op.action = action.name


CLASSES = (MOTION_PT_panel,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
