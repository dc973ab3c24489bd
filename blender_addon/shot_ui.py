"""The Shot sub-panel: a list of prompt segments (text, seconds; reorderable), Empties as waypoints and reach targets,
a Curve as a path, and Generate Shot, which sends the whole shot and writes one Action over it."""

# Blender declares properties as annotations holding calls (`text: StringProperty(...)`), which mypy rejects.
# mypy: disable-error-code="valid-type"

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import armature, readback
from .action_io import armature_data
from .operators import _armature_to_write, _seed, _send
from .properties import scene_settings
from .shot_scene import TARGET_ROLES, WAYPOINT_ROLES, MotionFrame, ShotSceneError, check_scene_shot, read_shot

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

ROLE_ITEMS = [
    ("WAYPOINT", "Waypoint", "The pelvis over this point at each frame the Empty's location is keyed"),
    ("PASS", "Pass Through", "The pelvis passes over this point some time between the waypoints around its key"),
    ("FACE", "Waypoint, Facing", "A waypoint where the character faces along the Empty's Y axis"),
    ("RIGHT_HAND", "Right Hand", "The right wrist at this point at each keyed frame"),
    ("LEFT_HAND", "Left Hand", "The left wrist at this point at each keyed frame"),
    ("RIGHT_FOOT", "Right Foot", "The right ankle at this point at each keyed frame"),
    ("LEFT_FOOT", "Left Foot", "The left ankle at this point at each keyed frame"),
    ("HEAD", "Head", "The head at this point at each keyed frame"),
    ("PELVIS", "Pelvis", "The pelvis (height included) at this point at each keyed frame"),
]
assert {item[0] for item in ROLE_ITEMS} == set(WAYPOINT_ROLES) | set(TARGET_ROLES)


def _is_empty(self: Any, obj: bpy.types.Object) -> bool:
    return obj.type == "EMPTY"


def _is_curve(self: Any, obj: bpy.types.Object) -> bool:
    return obj.type == "CURVE"


class MOTION_PG_shot_segment(bpy.types.PropertyGroup):
    """One prompt of a shot and how long it lasts."""

    text: StringProperty(name="Prompt", default="a person walks forward", description="What the person does")
    seconds: FloatProperty(name="Seconds", default=5.0, min=0.5, max=60.0, description="How long (0.5-60 s)")


class MOTION_PG_shot_mark(bpy.types.PropertyGroup):
    """An Empty that marks a waypoint or a reach target (one per keyed frame of its location)."""

    obj: PointerProperty(name="Empty", type=bpy.types.Object, poll=_is_empty)
    role: EnumProperty(name="Role", items=ROLE_ITEMS, default="WAYPOINT")


class MOTION_PG_shot(bpy.types.PropertyGroup):
    """The scene's shot (`scene.motiongpt3_shot`)."""

    segments: CollectionProperty(type=MOTION_PG_shot_segment)
    segment_index: IntProperty(default=0)
    marks: CollectionProperty(type=MOTION_PG_shot_mark)
    mark_index: IntProperty(default=0)
    path: PointerProperty(
        name="Path", type=bpy.types.Object, poll=_is_curve, description="A Curve the pelvis follows (its first spline)"
    )
    path_start: IntProperty(name="From", default=1, description="Frame the pelvis is at the curve's start")
    path_end: IntProperty(name="To", default=100, description="Frame the pelvis reaches the curve's end")


def shot_settings(context: bpy.types.Context) -> Any:
    if context.scene is None:
        raise RuntimeError("no active scene")
    return context.scene.motiongpt3_shot  # type: ignore[attr-defined]


class MOTION_UL_shot_segments(bpy.types.UIList):
    def draw_item(
        self,
        context: Any,
        layout: Any,
        data: Any,
        item: Any,
        icon: Any,
        active_data: Any,
        active_property: Any,
        index: Any = 0,
        flt_flag: Any = 0,
    ) -> None:
        row = layout.row(align=True)
        row.prop(item, "text", text="", emboss=False)
        sub = row.row(align=True)
        sub.ui_units_x = 4
        sub.prop(item, "seconds", text="")


class MOTION_UL_shot_marks(bpy.types.UIList):
    def draw_item(
        self,
        context: Any,
        layout: Any,
        data: Any,
        item: Any,
        icon: Any,
        active_data: Any,
        active_property: Any,
        index: Any = 0,
        flt_flag: Any = 0,
    ) -> None:
        row = layout.row(align=True)
        row.prop(item, "obj", text="")
        row.prop(item, "role", text="")


class _ShotOperator(bpy.types.Operator):
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}


class MOTION_OT_shot_segment_add(_ShotOperator):
    """Add a prompt segment after the selected one"""

    bl_idname = "motion.shot_segment_add"
    bl_label = "Add Segment"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        shot = shot_settings(context)
        item = shot.segments.add()
        item.text, item.seconds = "a person walks forward", 5.0
        position = min(shot.segment_index + 1, len(shot.segments) - 1) if len(shot.segments) > 1 else 0
        shot.segments.move(len(shot.segments) - 1, position)
        shot.segment_index = position
        return {"FINISHED"}


def _remove_selected(shot: Any, items: str, index: str) -> set[OperatorReturnItems]:
    """Remove the selected row of the shot's collection `items` (its list index in the property `index`) and keep a
    row selected."""
    collection, selected = getattr(shot, items), getattr(shot, index)
    if not 0 <= selected < len(collection):
        return {"CANCELLED"}
    collection.remove(selected)
    setattr(shot, index, min(selected, max(len(collection) - 1, 0)))
    return {"FINISHED"}


class MOTION_OT_shot_segment_remove(_ShotOperator):
    """Remove the selected prompt segment"""

    bl_idname = "motion.shot_segment_remove"
    bl_label = "Remove Segment"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        return _remove_selected(shot_settings(context), "segments", "segment_index")


class MOTION_OT_shot_segment_move(_ShotOperator):
    """Move the selected prompt segment up or down"""

    bl_idname = "motion.shot_segment_move"
    bl_label = "Move Segment"

    direction: EnumProperty(items=[("UP", "Up", ""), ("DOWN", "Down", "")])

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        shot = shot_settings(context)
        index = shot.segment_index
        other = index - 1 if self.direction == "UP" else index + 1
        if not (0 <= index < len(shot.segments) and 0 <= other < len(shot.segments)):
            return {"CANCELLED"}
        shot.segments.move(index, other)
        shot.segment_index = other
        return {"FINISHED"}


class MOTION_OT_shot_mark_add(_ShotOperator):
    """Add the selected Empties as waypoints (set each one's role in the list); an empty row when none is selected"""

    bl_idname = "motion.shot_mark_add"
    bl_label = "Add Empties"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        shot = shot_settings(context)
        listed = {mark.obj for mark in shot.marks if mark.obj is not None}
        chosen: list[bpy.types.Object | None] = [
            o for o in (context.selected_objects or []) if o.type == "EMPTY" and o not in listed
        ]
        for obj in chosen or [None]:
            mark = shot.marks.add()
            mark.obj = obj
        shot.mark_index = len(shot.marks) - 1
        return {"FINISHED"}


class MOTION_OT_shot_mark_remove(_ShotOperator):
    """Remove the selected mark from the shot (the Empty itself stays)"""

    bl_idname = "motion.shot_mark_remove"
    bl_label = "Remove Mark"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        return _remove_selected(shot_settings(context), "marks", "mark_index")


class MOTION_OT_generate_shot(bpy.types.Operator):
    """Generate the whole shot (every segment in order, through the waypoints, along the path, to the targets) onto
    the active armature as one new Action per candidate"""

    bl_idname = "motion.generate_shot"
    bl_label = "Generate Shot"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        s, shot = scene_settings(context), shot_settings(context)
        scene = context.scene
        assert scene is not None  # shot_settings
        target = _armature_to_write(self, context, s.create_armature)
        if target is None:
            return {"CANCELLED"}
        obj, is_new = target
        created = obj if is_new else None
        fps = readback.scene_fps(scene)
        start = scene.frame_current if s.use_current_frame else s.start_frame
        try:
            scene_shot = read_shot(shot, MotionFrame(armature.target_of(obj)), float(start), fps)
            check_scene_shot(scene_shot)
        except ShotSceneError as error:
            if created is not None:  # nothing is left behind by a refused shot
                data = armature_data(created)
                bpy.data.objects.remove(created)
                bpy.data.armatures.remove(data)
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        seed = _seed(s)
        fields: dict[str, Any] = {**scene_shot.fields, "seed": seed, "candidates": s.candidates}
        if s.guidance > 0:
            fields["guidance"] = s.guidance
        texts = [segment["text"] for segment in scene_shot.fields["segments"]]
        params = {"prompt": " / ".join(texts), "seed": seed, "fps": fps, "frames": None, "start_frame": start}
        params["root_motion"], params["plant_feet"] = True, s.plant_feet  # waypoints need the root's motion
        try:
            _send("shot", fields, None, obj.name, params)
        except Exception as error:  # zmq missing, bad key file, invalid fields
            self.report({"ERROR"}, f"could not send the request: {error}")
            return {"CANCELLED"}
        return {"FINISHED"}


class MOTION_PT_shot(bpy.types.Panel):
    bl_label = "Shot"
    bl_idname = "MOTION_PT_shot"
    bl_parent_id = "MOTION_PT_panel"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Motion"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        if layout is None:
            return
        shot = shot_settings(context)
        total = sum(segment.seconds for segment in shot.segments)
        layout.label(text=f"Segments: {total:g} s of at most 60 s", icon="SEQUENCE")
        row = layout.row()
        row.template_list("MOTION_UL_shot_segments", "", shot, "segments", shot, "segment_index", rows=3)
        col = row.column(align=True)
        col.operator(MOTION_OT_shot_segment_add.bl_idname, text="", icon="ADD")
        col.operator(MOTION_OT_shot_segment_remove.bl_idname, text="", icon="REMOVE")
        col.separator()
        col.operator(MOTION_OT_shot_segment_move.bl_idname, text="", icon="TRIA_UP").direction = "UP"
        col.operator(MOTION_OT_shot_segment_move.bl_idname, text="", icon="TRIA_DOWN").direction = "DOWN"
        layout.label(text="Waypoints and targets (Empties; keyed frame = time)", icon="EMPTY_AXIS")
        row = layout.row()
        row.template_list("MOTION_UL_shot_marks", "", shot, "marks", shot, "mark_index", rows=2)
        col = row.column(align=True)
        col.operator(MOTION_OT_shot_mark_add.bl_idname, text="", icon="ADD")
        col.operator(MOTION_OT_shot_mark_remove.bl_idname, text="", icon="REMOVE")
        layout.prop(shot, "path", icon="CURVE_DATA")
        row = layout.row(align=True)
        row.enabled = shot.path is not None
        row.prop(shot, "path_start")
        row.prop(shot, "path_end")
        layout.operator(MOTION_OT_generate_shot.bl_idname, icon="PLAY")


CLASSES = (
    MOTION_PG_shot_segment,
    MOTION_PG_shot_mark,
    MOTION_PG_shot,
    MOTION_UL_shot_segments,
    MOTION_UL_shot_marks,
    MOTION_OT_shot_segment_add,
    MOTION_OT_shot_segment_remove,
    MOTION_OT_shot_segment_move,
    MOTION_OT_shot_mark_add,
    MOTION_OT_shot_mark_remove,
    MOTION_OT_generate_shot,
    MOTION_PT_shot,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    # fake-bpy-module types bpy.props functions as returning None; at run time they return the property definition.
    bpy.types.Scene.motiongpt3_shot = bpy.props.PointerProperty(type=MOTION_PG_shot)  # type: ignore[attr-defined,func-returns-value]


def unregister() -> None:
    del bpy.types.Scene.motiongpt3_shot  # type: ignore[attr-defined]
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
