"""The Bone Mapping editor in real Blender (a rig no preset covers, mapped by hand, then generated onto; bad mappings
refused; saved presets detected), Plant Feet holding planted feet still, and a scene unit scale other than 1."""

from __future__ import annotations

import json

import bpy
import numpy as np
import pytest
from rig_builders import MIXAMO
from test_blender_addon import _tick_until_settled
from test_blender_rigs import RIGS, _directions, _generate_on, build_rig

import blender_addon
from blender_addon import armature, mapping_editor, readback
from shared.motion.align import yaw_matrix
from shared.motion.bone_map import bone_map_data, load_bone_map, parse_bone_map
from shared.motion.humanml3d import features_to_joints
from shared.motion.skeleton import JOINT_NAMES, tpose_joints

pytestmark = pytest.mark.usefixtures("addon")

HAND = ("b_hips", "b_thigh_l", "b_thigh_r", "b_spine_a", "b_shin_l", "b_shin_r", "b_spine_b", "b_foot_l", "b_foot_r",
        "b_chest", "b_toe_l", "b_toe_r", "b_neck", "b_clav_l", "b_clav_r", "b_head", "b_arm_l", "b_arm_r",
        "b_forearm_l", "b_forearm_r", "b_hand_l", "b_hand_r")  # fmt: skip


@pytest.fixture
def preset_dir(tmp_path, monkeypatch):
    """User presets go to a temporary folder, never into the real Blender config."""
    monkeypatch.setattr(armature, "user_preset_dir", lambda create=False: tmp_path)
    return tmp_path


def hand_rig(monkeypatch, features: np.ndarray, kind: str = "hand", yaw: float = 0.7, size: float = 1.05):
    """A rig with made-up bone names (no preset fits), random rolls, turned and scaled: (object, rest, facing)."""
    monkeypatch.setitem(RIGS, kind, (HAND, "", False, False, yaw, size, ()))
    return build_rig(kind, features)


def set_slots(obj: bpy.types.Object, bones: dict[str, str] | tuple[str, ...]) -> None:
    """Type bone names into the slots, as the user does with the pickers."""
    slots = obj.motiongpt3_mapping
    for joint, bone in bones.items() if isinstance(bones, dict) else zip(JOINT_NAMES, bones, strict=True):
        setattr(slots, joint, bone)


def stored(obj: bpy.types.Object) -> str | None:
    return obj.data.get(armature.PROP_BONE_MAP)


def direction_error_deg(got: np.ndarray, facing: float, source: np.ndarray) -> np.ndarray:
    """(T, 21) degrees between read-back bones (world, Y-up) turned into the rig's facing frame and the source's bones:
    the oracle of test_blender_rigs.py."""
    quarter = round(facing / (np.pi / 2)) * np.pi / 2
    got = got @ yaw_matrix(quarter if abs(facing - quarter) < np.radians(10) else facing)
    return np.degrees(np.arccos(np.clip((_directions(got) * _directions(source)).sum(-1), -1, 1)))


def test_sub_panel_sits_closed_under_the_motion_panel() -> None:
    panel = bpy.types.MOTION_PT_bone_mapping
    assert (panel.bl_parent_id, panel.bl_options) == ("MOTION_PT_panel", {"DEFAULT_CLOSED"})
    slots = bpy.types.Object.bl_rna.properties[mapping_editor.SLOTS_PROP]
    assert slots.fixed_type.identifier == "MOTION_PG_bone_mapping"


def test_hand_mapped_rig_is_refused_then_mapped_and_generated(client, cmu_walk, monkeypatch) -> None:
    features = cmu_walk[0]
    obj, _, facing = hand_rig(monkeypatch, features)
    bpy.context.view_layer.objects.active = obj
    # No preset fits: the refusal names none (no "closest preset 'cgspeed_daz'" sending users renaming bones) and
    # points at the mapping proposed from the bone names, which the panel shows and Fill puts in the slots.
    with pytest.raises(RuntimeError, match=r"no bone-map preset fits.*finds 22 of 22 joints.*Bone Mapping panel") as e:
        bpy.ops.motion.generate()
    assert "closest" not in str(e.value) and "cgspeed" not in str(e.value)
    assert client.sent == []
    lines = mapping_editor.status_lines(obj)
    assert lines[:2] == ["No preset fits these bone names", "Proposed from the names: 22 of 22 joints"]
    assert stored(obj) is None  # proposed, not applied: the user checks it first
    assert bpy.ops.motion.mapping_fill() == {"FINISHED"}
    assert mapping_editor.read_slots(obj) == list(HAND)  # b_clav_l is the collar, b_arm_l the upper arm, ...
    set_slots(obj, HAND)
    assert bpy.ops.motion.mapping_apply() == {"FINISHED"}
    match = armature.rig_match(obj)
    assert (match.preset, match.complete) == ("custom", True)
    assert [s.bones for s in match.bone_map.sources] == [(b,) for b in HAND]
    assert mapping_editor.status_lines(obj) == ["Applied mapping (all 22 joints mapped)"]
    _generate_on(obj, client, features)
    got = readback.sample_joints(obj, 1, len(features)).world
    error = direction_error_deg(got, facing, features_to_joints(features))
    assert error.max() < 2.0, error.max()
    keyed = {fc.data_path.split('"')[1] for fc in blender_addon.action_io.all_fcurves(obj.animation_data.action)}
    assert keyed == set(HAND)


BAD = {
    "duplicate bone": ({"left_hip": "b_thigh_r"}, r"bone 'b_thigh_r' is used by left_hip and right_hip"),
    "nonexistent bone": ({"left_elbow": "b_elbow_l"}, r"left_elbow: no bone 'b_elbow_l'"),
    "missing slot": ({"right_wrist": "", "head": ""}, r"unmapped joints: head, right_wrist"),
    "hierarchy": ({"left_knee": "b_foot_l", "left_ankle": "b_shin_l"}, r"left_ankle: bone 'b_shin_l' is not below"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_mapping_is_refused_naming_the_slot_and_changes_nothing(case, client, cmu_walk, monkeypatch) -> None:
    obj, _, _ = hand_rig(monkeypatch, cmu_walk[0])
    bpy.context.view_layer.objects.active = obj
    set_slots(obj, HAND)
    assert bpy.ops.motion.mapping_apply() == {"FINISHED"}
    before = stored(obj)
    changes, message = BAD[case]
    set_slots(obj, changes)
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.motion.mapping_apply()
    assert stored(obj) == before
    assert armature.rig_match(obj).bone_map.sources[0].bones == ("b_hips",)


def test_fill_from_detection_completes_a_partly_matching_rig(client, cmu_walk) -> None:
    obj, _, _ = build_rig("mixamo", cmu_walk[0])
    obj.data.bones["mixamorig:LeftHand"].name = "mixamorig:HandL"
    bpy.context.view_layer.objects.active = obj
    assert not armature.is_mapped_armature(obj)
    assert bpy.ops.motion.mapping_fill() == {"FINISHED"}
    slots = mapping_editor.read_slots(obj)  # the preset's bones, and its gap proposed from the names
    assert slots[JOINT_NAMES.index("left_wrist")] == "mixamorig:HandL"
    assert slots[0] == "mixamorig:Hips" and obj.motiongpt3_mapping.base_preset == "mixamo"
    set_slots(obj, {"left_wrist": ""})
    with pytest.raises(RuntimeError, match="unmapped joints: left_wrist"):
        bpy.ops.motion.mapping_apply()
    assert stored(obj) is None
    set_slots(obj, {"left_wrist": "mixamorig:HandL"})
    assert bpy.ops.motion.mapping_apply() == {"FINISHED"}
    bone_map = armature.rig_bone_map(obj)
    assert bone_map.leave_alone == load_bone_map("mixamo").leave_alone  # the preset's extra bones stay untouched
    assert mapping_editor.status_lines(obj) == ["Applied mapping (all 22 joints mapped)"]
    assert bpy.ops.motion.mapping_clear() == {"FINISHED"}
    assert stored(obj) is None and mapping_editor.read_slots(obj) == [""] * 22
    assert not armature.is_mapped_armature(obj)


def test_saved_preset_round_trips_and_detects_a_rig_with_the_same_names(
    client, cmu_walk, monkeypatch, preset_dir
) -> None:
    obj, _, _ = hand_rig(monkeypatch, cmu_walk[0])
    bpy.context.view_layer.objects.active = obj
    set_slots(obj, HAND)
    for bad in ("../escape", "two words", "", "mixamo", "CMU"):
        with pytest.raises(RuntimeError, match=r"safe file name|bundled preset"):
            bpy.ops.motion.mapping_save_preset(preset_name=bad)
    assert list(preset_dir.iterdir()) == []
    assert bpy.ops.motion.mapping_save_preset(preset_name="hand_rig") == {"FINISHED"}
    path = preset_dir / "hand_rig.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    parsed = parse_bone_map(data, "hand_rig")
    assert [s.bones for s in parsed.sources] == [(b,) for b in HAND] and parsed.unit_to_metres == 1.0
    assert bone_map_data(parsed, data["description"]) == data  # the file is exactly what the parser reads
    assert load_bone_map(path) == parsed
    with pytest.raises(RuntimeError, match="exists"):
        bpy.ops.motion.mapping_save_preset(preset_name="hand_rig")
    set_slots(obj, {"head": "b_neck"})  # a bad mapping is not saved, even over the old file
    with pytest.raises(RuntimeError, match=r"not saved: bone 'b_neck' is used by neck and head\n"):
        bpy.ops.motion.mapping_save_preset(preset_name="hand_rig", overwrite=True)
    set_slots(obj, {"head": "b_head"})
    assert bpy.ops.motion.mapping_save_preset(preset_name="hand_rig", overwrite=True) == {"FINISHED"}
    assert json.loads(path.read_text(encoding="utf-8")) == data
    assert stored(obj) is None  # saving does not apply
    other, _, _ = hand_rig(monkeypatch, cmu_walk[0], "hand_2", yaw=-2.5, size=0.9)
    match = armature.rig_match(other)
    assert (match.preset, match.complete) == ("hand_rig", True)
    assert mapping_editor.status_lines(other) == ["Detected preset: hand_rig (all 22 joints mapped)"]


def _world_heads(obj: bpy.types.Object, bones: list[str], frames: int) -> np.ndarray:
    """(frames, B, 3) evaluated world heads of `bones` in metres (Blender axes) from scene frame 1."""
    scene = bpy.context.scene
    metres = scene.unit_settings.scale_length
    out = np.empty((frames, len(bones), 3))
    for t in range(frames):
        scene.frame_set(1 + t)
        out[t] = [tuple(obj.matrix_world @ obj.pose.bones[b].head) for b in bones]
    return out * metres


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _contact_drift(ankles: np.ndarray, contacts: np.ndarray) -> np.ndarray:
    """Per contact run of either foot (ankle or ball label), the largest distance between two of the planted ankle's
    positions in the run (m)."""
    drift = []
    for side in (0, 1):
        for start, end in _runs(contacts[:, 2 * side] | contacts[:, 2 * side + 1]):
            p = ankles[start:end, side]
            drift.append(np.linalg.norm(p[:, None] - p[None], axis=-1).max())
    return np.array(drift)


def test_plant_feet_holds_planted_feet_still(client, cmu_walk) -> None:
    features = cmu_walk[0]
    contacts = features[:, -4:] > 0.5  # left ankle, left ball, right ankle, right ball (HumanML3D.md §1.1)
    drift = {}
    for plant in (False, True):
        bpy.context.scene.motiongpt3.plant_feet = plant
        obj, _, _ = build_rig("mixamo", features)
        _generate_on(obj, client, features)
        ankles = _world_heads(obj, ["mixamorig:LeftFoot", "mixamorig:RightFoot"], len(features))
        drift[plant] = _contact_drift(ankles, contacts)
    print(f"ankle drift over contact runs: {drift[False].max() * 100:.2f} cm free, {drift[True].max() * 1e3:.4f} mm")
    # Planted, the ankle is the run's mean position at every frame of the run (exact in the placed joints); only the
    # rig solve's float error is left (the directions match to ~1e-3 degrees: ~1e-5 m over a leg), hence 0.1 mm.
    assert drift[True].max() < 1e-4
    # The clip's labels allow a foot to slide (HumanML3D marks contact below 5 cm per frame): free, they drift.
    assert drift[False].max() > 0.02 and np.median(drift[False]) > 10 * drift[True].max()


def _pelvis_travel(track: np.ndarray) -> tuple[float, float]:
    """(path length, net distance) of a (T, 2) horizontal track."""
    return float(np.linalg.norm(np.diff(track, axis=0), axis=-1).sum()), float(np.linalg.norm(track[-1] - track[0]))


def test_scene_unit_scale_keeps_the_metric_size(client, cmu_walk, monkeypatch) -> None:
    features = cmu_walk[0]
    scene = bpy.context.scene
    source = features_to_joints(features)
    expected = np.array(_pelvis_travel(source[:, 0, [0, 2]]))
    sent, travel = {}, {}
    for metres_per_unit in (1.0, 0.01):
        scene.unit_settings.scale_length = metres_per_unit
        kind = f"mixamo_{metres_per_unit:g}"  # Mixamo names, no FBX axes: the same rig in metres or in cm
        monkeypatch.setitem(RIGS, kind, (MIXAMO, "", False, False, 0.4, 1.0 / metres_per_unit, ()))
        obj, rest, _ = build_rig(kind, features)
        _generate_on(obj, client, features)
        travel[metres_per_unit] = np.array(_pelvis_travel(_world_heads(obj, ["Hips"], len(features))[:, 0, :2]))
        standing = lambda j: j[0, 1] - j[[7, 8, 10, 11], 1].min()  # noqa: E731
        leg_scale = standing(rest * metres_per_unit) / standing(tpose_joints())
        np.testing.assert_allclose(travel[metres_per_unit], leg_scale * expected, rtol=0.01)
        scene.frame_start, scene.frame_end = 1, len(features)
        bpy.context.view_layer.objects.active = obj
        assert bpy.ops.motion.caption() == {"FINISHED"}
        _tick_until_settled()
        sent[metres_per_unit] = client.sent[-1][3]["features"]
    print(f"pelvis travel (path, net) m: {travel[1.0]} at scale 1, {travel[0.01]} at 0.01; source {expected}")
    np.testing.assert_allclose(travel[0.01], travel[1.0], rtol=1e-4)
    scale = np.maximum(np.abs(sent[1.0]).max(0), 1e-3)
    assert (np.abs(sent[0.01] - sent[1.0]) / scale).max() < 1e-3
    np.testing.assert_allclose(sent[0.01][:, 4:67], sent[1.0][:, 4:67], atol=1e-4)  # joint positions (m)
