"""The Bone Mapping sub-panel: 22 bone pickers per armature, fill from detection, apply, clear, save as a preset."""

# Blender declares operator properties as annotations holding calls (`name: StringProperty()`), which mypy rejects.
# mypy: disable-error-code="valid-type"

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import bpy
from bpy.props import BoolProperty, StringProperty

from . import armature
from ._shared import BoneMap, RigMatch, bone_map_data, bundled_bone_maps, describe_missing, detect_rig_map, match_preset
from .action_io import armature_data
from .mapping_rules import JOINT_NAMES, MappingError, build_mapping, preset_name_error, slots_from_match

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems

# The slots live on the Object: each rig keeps its own draft (switching the active armature never mixes two rigs'
# slots), it is saved in the .blend and appended with the rig, and edits to it are undone like any object property.
# The applied mapping itself is the Armature data's `armature.PROP_BONE_MAP` (what `armature.rig_match` reads).
SLOTS_PROP = "motiongpt3_mapping"
BASE = "base_preset"  # the preset Fill from Detection used: joints still holding its bones keep its sources / drive


def _string(name: str, description: str) -> Any:
    """A StringProperty definition (fake-bpy-module types bpy.props functions as returning None)."""
    return StringProperty(name=name, description=description)


MOTION_PG_bone_mapping: type = type(
    "MOTION_PG_bone_mapping",
    (bpy.types.PropertyGroup,),
    {
        "__doc__": "The 22 bone slots of the mapping editor (one per SMPL-22 joint) on an armature object.",
        "__annotations__": {
            BASE: _string("Filled From", "The preset the slots were filled from"),
            **{j: _string(j, f"The bone whose head is the SMPL joint {j}") for j in JOINT_NAMES},
        },
    },
)


def slots_of(obj: bpy.types.Object) -> Any:
    """The object's `MOTION_PG_bone_mapping` (`Object.motiongpt3_mapping`, registered below)."""
    return getattr(obj, SLOTS_PROP)


def read_slots(obj: bpy.types.Object) -> list[str]:
    """The 22 slot values (bone names, '' for empty), SMPL joint order."""
    slots = slots_of(obj)
    return [str(getattr(slots, j)).strip() for j in JOINT_NAMES]


def fill_slots(obj: bpy.types.Object, bones: list[str], base: str = "") -> None:
    """Set the 22 slots (and the preset they came from)."""
    slots = slots_of(obj)
    for joint, bone in zip(JOINT_NAMES, bones, strict=True):
        setattr(slots, joint, bone)
    setattr(slots, BASE, base)


def detected(obj: bpy.types.Object) -> RigMatch:
    """The best preset for the armature's bones, ignoring any applied mapping."""
    return detect_rig_map(armature.bone_parents(obj), armature.presets())


def _base_match(obj: bpy.types.Object) -> RigMatch | None:
    name = str(getattr(slots_of(obj), BASE))
    preset = next((p for p in armature.presets() if p.name == name), None) if name else None
    return match_preset(preset, armature.bone_parents(obj)) if preset is not None else None


def slot_mapping(obj: bpy.types.Object, name: str = "custom") -> BoneMap:
    """The checked bone map of the object's slots (`mapping_rules.build_mapping`); MappingError names the faults."""
    return build_mapping(read_slots(obj), armature.bone_parents(obj), _base_match(obj), name)


def status_lines(obj: bpy.types.Object) -> list[str]:
    """What the panel says about the armature: the mapping in use and the joints no bone is mapped to."""
    try:
        match = armature.rig_match(obj)
    except ValueError as error:  # includes a malformed stored mapping (JSONDecodeError, BoneMapError)
        return [f"Applied mapping unreadable: {error}"]
    applied = armature_data(obj).get(armature.PROP_BONE_MAP) is not None
    head = "Applied mapping" if applied else f"Detected preset: {match.preset}"
    if match.complete:
        return [f"{head} (all 22 joints mapped)"]
    if match.score >= 0.5 or applied:
        return [head, f"Unmapped: {', '.join(match.missing)}", describe_missing(match)]
    proposal = armature.propose(obj)
    found = len(JOINT_NAMES) - len(proposal.missing)
    lines = ["No preset fits these bone names", f"Proposed from the names: {found} of {len(JOINT_NAMES)} joints"]
    if proposal.missing:
        lines.append(f"Not found: {', '.join(proposal.missing)}")
    return [*lines, "Fill from Detection to check the proposal, then Apply Mapping"]


class _ArmatureOperator(bpy.types.Operator):
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = context.active_object
        return obj is not None and obj.type == "ARMATURE"


class MOTION_OT_mapping_fill(_ArmatureOperator):
    """Fill the 22 slots from the best-fitting bone-map preset (joints it cannot map are left empty)"""

    bl_idname = "motion.mapping_fill"
    bl_label = "Fill from Detection"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        obj = context.active_object
        assert obj is not None  # poll
        match = detected(obj)
        proposal = armature.propose(obj) if match.missing else None
        if proposal is not None and match.score < 0.5:  # no preset fits: the mapping proposed from the names
            fill_slots(obj, [b or "" for b in proposal.bones])
            missing = f"; not found: {', '.join(proposal.missing)}" if proposal.missing else ""
            self.report({"INFO"}, f"slots proposed from the bone names: check them, then Apply Mapping{missing}")
            return {"FINISHED"}
        slots = slots_from_match(match)
        proposed = []
        if proposal is not None:  # a preset that nearly fits: its gaps proposed from the names
            for i, (slot, bone) in enumerate(zip(slots, proposal.bones, strict=True)):
                if not slot and bone and bone not in slots:
                    slots[i] = bone
                    proposed.append(JOINT_NAMES[i])
        fill_slots(obj, slots, match.preset)
        empty = [j for j, b in zip(JOINT_NAMES, slots, strict=True) if not b]
        note = f"; proposed from the names: {', '.join(proposed)}" if proposed else ""
        note += f"; unmapped: {', '.join(empty)}" if empty else ""
        self.report({"INFO"}, f"slots filled from preset {match.preset!r}{note}")
        return {"FINISHED"}


class MOTION_OT_mapping_apply(_ArmatureOperator):
    """Check the 22 slots and store them as this armature's bone mapping (used instead of the detected preset)"""

    bl_idname = "motion.mapping_apply"
    bl_label = "Apply Mapping"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        obj = context.active_object
        assert obj is not None  # poll
        try:
            bone_map = slot_mapping(obj)
        except MappingError as error:
            self.report({"ERROR"}, f"{obj.name}: mapping not applied: {error}")
            return {"CANCELLED"}
        data = bone_map_data(bone_map, f"mapped in the MotionGPT3 mapping editor for {obj.name}")
        armature_data(obj)[armature.PROP_BONE_MAP] = json.dumps(data)
        self.report({"INFO"}, f"{obj.name}: bone mapping applied")
        return {"FINISHED"}


class MOTION_OT_mapping_clear(_ArmatureOperator):
    """Remove this armature's bone mapping and empty the slots (the best-fitting preset is used again)"""

    bl_idname = "motion.mapping_clear"
    bl_label = "Clear Mapping"

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        obj = context.active_object
        assert obj is not None  # poll
        armature_data(obj).pop(armature.PROP_BONE_MAP, None)
        fill_slots(obj, [""] * len(JOINT_NAMES))
        return {"FINISHED"}


class MOTION_OT_mapping_save_preset(_ArmatureOperator):
    """Save the 22 slots as a bone-map preset: rigs with these bone names are then detected with it"""

    bl_idname = "motion.mapping_save_preset"
    bl_label = "Save as Preset"

    preset_name: StringProperty(name="Name", description="File name of the preset (letters, digits, '_' and '-')")
    overwrite: BoolProperty(name="Overwrite", default=False, description="Replace a saved preset of this name")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[OperatorReturnItems]:
        wm = context.window_manager
        if wm is None:
            return self.execute(context)
        return wm.invoke_props_dialog(self)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        if layout is None:
            return
        layout.prop(self, "preset_name")
        folder = armature.user_preset_dir()
        if self.preset_name and folder is not None and (folder / f"{self.preset_name}.json").exists():
            layout.label(text=f"A preset {self.preset_name!r} exists", icon="ERROR")
            layout.prop(self, "overwrite")

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        obj = context.active_object
        assert obj is not None  # poll
        name = self.preset_name.strip()
        if problem := preset_name_error(name, bundled_bone_maps()):
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        try:
            bone_map = slot_mapping(obj, name)
        except MappingError as error:
            self.report({"ERROR"}, f"{obj.name}: preset not saved: {error}")
            return {"CANCELLED"}
        folder = armature.user_preset_dir(create=True)
        if folder is None:
            self.report({"ERROR"}, "Blender has no user configuration folder to save presets in")
            return {"CANCELLED"}
        path = folder / f"{name}.json"
        if path.exists() and not self.overwrite:
            self.report({"ERROR"}, f"a preset {name!r} exists ({path}): tick Overwrite to replace it")
            return {"CANCELLED"}
        data = bone_map_data(bone_map, f"saved from {obj.name} in the MotionGPT3 mapping editor")
        try:
            path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            self.report({"ERROR"}, f"could not write {path}: {error}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"preset {name!r} saved to {path}")
        return {"FINISHED"}


class MOTION_PT_bone_mapping(bpy.types.Panel):
    bl_label = "Bone Mapping"
    bl_idname = "MOTION_PT_bone_mapping"
    bl_parent_id = "MOTION_PT_panel"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Motion"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        obj = context.active_object
        if layout is None:
            return
        if obj is None or obj.type != "ARMATURE":
            layout.label(text="Select an armature")
            return
        col = layout.column(align=True)
        for k, line in enumerate(status_lines(obj)):
            col.label(text=line, icon="INFO" if k == 0 else "ERROR")
        row = layout.row(align=True)
        row.operator(MOTION_OT_mapping_fill.bl_idname, icon="VIEWZOOM")
        row.operator(MOTION_OT_mapping_clear.bl_idname, icon="X")
        row = layout.row(align=True)
        row.operator(MOTION_OT_mapping_apply.bl_idname, icon="CHECKMARK")
        row.operator(MOTION_OT_mapping_save_preset.bl_idname, icon="FILE_TICK")
        slots, data = slots_of(obj), armature_data(obj)
        col = layout.column(align=True)
        for joint in JOINT_NAMES:
            bone = getattr(slots, joint)
            row = col.row(align=True)
            row.alert = not bone or bone not in data.bones
            row.prop_search(slots, joint, data, "bones", text=joint)


CLASSES = (
    MOTION_PG_bone_mapping,
    MOTION_OT_mapping_fill,
    MOTION_OT_mapping_apply,
    MOTION_OT_mapping_clear,
    MOTION_OT_mapping_save_preset,
    MOTION_PT_bone_mapping,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    # fake-bpy-module types bpy.props functions as returning None; at run time they return the property definition.
    pointer: Any = bpy.props.PointerProperty(type=MOTION_PG_bone_mapping)  # type: ignore[func-returns-value]
    setattr(bpy.types.Object, SLOTS_PROP, pointer)


def unregister() -> None:
    delattr(bpy.types.Object, SLOTS_PROP)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
