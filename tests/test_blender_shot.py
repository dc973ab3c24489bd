"""Shots in real Blender against a scripted backend: the segment list, Empties (keyed frame = time) and a Curve read
into a shot request in the motion's frame, one Action over the whole shot whose evaluated root passes the Empties, on
the SMPL-22 armature and a Mixamo-like rig, and refusals that name the object and leave the scene as it was."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from mathutils import Matrix, Vector
from scripted_client import Event
from test_blender_addon import _tick_until_settled
from test_blender_rigs import build_rig

from blender_addon import armature, results
from shared.motion.humanml3d import features_to_joints
from shared.motion.skeleton import tpose_joints

pytestmark = pytest.mark.usefixtures("addon")

YAW = 0.5  # radians about Blender's Z: the armature's turn (away from a quarter turn, where facing snaps)
ORIGIN = np.array([2.0, 1.0, 0.0])


def rest_facing(obj: bpy.types.Object) -> float:
    """The way an armature's rest faces (HumanML3D yaw about +Y, 0 = Blender -Y) from its hips and shoulders, as a
    person faces: up x (right - left). The SMPL-22 rest is not quite symmetric: YAW 0.5 faces 0.495."""
    bone_map = armature.rig_bone_map(obj)
    head = lambda j: np.array(obj.matrix_world @ obj.data.bones[bone_map.sources[j].bones[0]].head_local)  # noqa: E731
    across = head(2) - head(1) + head(17) - head(16)
    return float(np.arctan2(-across[1], -across[0]))


def smpl_world(motion: np.ndarray, facing: float) -> np.ndarray:
    """Motion-frame points (..., 3) (Y up; the rest faces +Z there) -> Blender world for the SMPL-22 armature at
    ORIGIN whose rest faces `facing`: p = origin + Rz(facing) (x, -z, y)."""
    m = np.asarray(motion, dtype=np.float64)
    blender = np.stack([m[..., 0], -m[..., 2], m[..., 1]], axis=-1)
    c, s = np.cos(facing), np.sin(facing)
    return ORIGIN + blender @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T


def smpl_armature() -> bpy.types.Object:
    obj = armature.create_smpl_armature(bpy.context)
    obj.matrix_world = Matrix.Translation(Vector(ORIGIN)) @ Matrix.Rotation(YAW, 4, "Z")
    return obj


def keyed_empty(name: str, keys: list[tuple[int, np.ndarray]]) -> bpy.types.Object:
    obj = bpy.data.objects.new(name, None)
    bpy.context.scene.collection.objects.link(obj)
    for frame, location in keys:
        obj.location = tuple(float(v) for v in location)
        obj.keyframe_insert("location", frame=frame)
    return obj


def poly_curve(name: str, points: np.ndarray) -> bpy.types.Object:
    data = bpy.data.curves.new(name, "CURVE")
    spline = data.splines.new("POLY")
    spline.points.add(len(points) - 1)
    for point, co in zip(spline.points, points, strict=True):
        point.co = (*co, 1.0)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def set_segments(segments: list[tuple[str, float]]) -> None:
    shot = bpy.context.scene.motiongpt3_shot
    shot.segments.clear()
    for text, seconds in segments:
        item = shot.segments.add()
        item.text, item.seconds = text, seconds


def add_mark(obj: bpy.types.Object, role: str) -> None:
    mark = bpy.context.scene.motiongpt3_shot.marks.add()
    mark.obj, mark.role = obj, role


def test_the_segment_list_adds_removes_and_reorders(client) -> None:
    shot = bpy.context.scene.motiongpt3_shot
    for _ in range(3):
        assert bpy.ops.motion.shot_segment_add() == {"FINISHED"}
    for item, text in zip(shot.segments, ("walk", "wave", "run"), strict=True):
        item.text = text
    shot.segment_index = 2
    assert bpy.ops.motion.shot_segment_move(direction="UP") == {"FINISHED"}
    assert [s.text for s in shot.segments] == ["walk", "run", "wave"] and shot.segment_index == 1
    assert bpy.ops.motion.shot_segment_move(direction="UP") == {"FINISHED"}
    assert bpy.ops.motion.shot_segment_move(direction="UP") == {"CANCELLED"}  # already first
    assert [s.text for s in shot.segments] == ["run", "walk", "wave"]
    shot.segment_index = 1
    assert bpy.ops.motion.shot_segment_remove() == {"FINISHED"}
    assert [s.text for s in shot.segments] == ["run", "wave"]
    bpy.ops.motion.shot_segment_add()  # after the selected one
    assert [s.text for s in shot.segments][2] == "a person walks forward"


def test_empties_and_a_curve_become_the_shot_request_in_the_motion_frame(client) -> None:
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base, scene.frame_current = 24, 1.0, 11
    facing = rest_facing(smpl_armature())
    assert abs(facing - YAW) < 0.01
    set_segments([("a person walks forward", 10.0), ("a person waves the right hand", 3.0), ("a person walks", 3)])
    door = keyed_empty(
        "Door", [(11 + 24 * 4, smpl_world([1.0, 0.0, 3.0], facing)), (11 + 24 * 9, smpl_world([-0.5, 0, 6], facing))]
    )
    hand = keyed_empty("Hand", [(11 + 24 * 12, smpl_world([0.2, 1.5, 6.3], facing))])
    add_mark(door, "WAYPOINT")
    add_mark(hand, "RIGHT_HAND")
    route = np.array([[-0.5, 0.0, 6.0], [-0.5, 0.0, 7.0], [0.0, 0.0, 8.0]])
    shot = scene.motiongpt3_shot
    shot.path, shot.path_start, shot.path_end = (
        poly_curve("Route", smpl_world(route, facing)),
        11 + 24 * 13,
        11 + 24 * 15,
    )
    bpy.context.view_layer.objects.active = bpy.data.objects["SMPL-22"]
    assert bpy.ops.motion.generate_shot() == {"FINISHED"}
    (_, kind, fields, arrays) = client.sent[-1]
    assert kind == "shot" and arrays == {}
    assert fields["segments"] == [
        {"text": "a person walks forward", "seconds": 10.0},
        {"text": "a person waves the right hand", "seconds": 3.0},
        {"text": "a person walks", "seconds": 3.0},
    ]
    assert [w["time"] for w in fields["waypoints"]] == pytest.approx([4.0, 9.0])
    np.testing.assert_allclose([w["position"] for w in fields["waypoints"]], [[1.0, 3.0], [-0.5, 6.0]], atol=1e-5)
    assert all(w["arrive"] for w in fields["waypoints"])
    (target,) = fields["targets"]
    assert target["joint"] == "right_hand" and target["time"] == pytest.approx(12.0)
    np.testing.assert_allclose(target["position"], [0.2, 1.5, 6.3], atol=1e-5)
    (path,) = fields["paths"]
    assert (path["start"], path["end"]) == pytest.approx((13.0, 15.0))
    np.testing.assert_allclose(path["points"], route[:, [0, 2]], atol=1e-5)


def rig_world(obj: bpy.types.Object, rest: np.ndarray, facing: float, motion_xz: np.ndarray) -> np.ndarray:
    """Where a rig puts a motion's floor point (Blender world XY, z 0): its rest pelvis over the floor, turned to its
    facing (a rest modelled within 10 degrees of an axis faces along it), the pelvis path scaled by its leg length over
    SMPL's (README: Use it on your own character)."""
    quarter = round(facing / (np.pi / 2)) * np.pi / 2
    facing = quarter if abs(facing - quarter) < np.radians(10) else facing
    standing = lambda j: j[0, 1] - j[[7, 8, 10, 11], 1].min()  # noqa: E731
    scale = standing(rest) / standing(tpose_joints())
    pelvis = np.array(obj.matrix_world @ obj.data.bones[armature.rig_bone_map(obj).sources[0].bones[0]].head_local)
    c, s = np.cos(facing), np.sin(facing)
    x, z = motion_xz[..., 0], motion_xz[..., 1]
    turned = np.stack([x * c + z * s, -x * s + z * c], axis=-1) * scale  # Y-up (x, z) turned about +Y
    return np.stack([pelvis[0] + turned[..., 0], pelvis[1] - turned[..., 1], np.zeros(len(x))], axis=-1)


@pytest.mark.parametrize("rig", ["smpl22", "mixamo"])
def test_one_action_over_the_shot_passes_the_waypoints(rig, client, cmu_walk) -> None:
    features = cmu_walk[0]  # 165 frames: the result the scripted backend answers with (8.25 s)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base, scene.frame_current = 30, 1.0, 5
    root = features_to_joints(features)[:, 0, [0, 2]]
    times = [3.0, 7.0]
    if rig == "smpl22":
        obj = smpl_armature()
        points = np.array([[root[round(t * 20)][0], 0.0, root[round(t * 20)][1]] for t in times])
        world = smpl_world(points, rest_facing(obj))
    else:
        obj, rest, facing = build_rig("mixamo", features)
        world = rig_world(obj, rest, facing, np.array([root[round(t * 20)] for t in times]))
    set_segments([("a person walks forward", 5.0), ("a person walks slowly", 3.25)])
    empties = [keyed_empty(f"Mark{k}", [(5 + round(t * 30), world[k])]) for k, t in enumerate(times)]
    for empty in empties:
        add_mark(empty, "WAYPOINT")
    bpy.context.view_layer.objects.active = obj
    actions = set(bpy.data.actions)
    assert bpy.ops.motion.generate_shot() == {"FINISHED"}
    request_id, _, fields, _ = client.sent[-1]
    # The waypoints sent are where the motion's own root is at those times (the scene -> motion frame mapping).
    np.testing.assert_allclose(
        [w["position"] for w in fields["waypoints"]], [root[round(t * 20)] for t in times], atol=0.01
    )
    client.queue = [Event("result", request_id, {"constraint_errors": []}, {"motions": features[None]})]
    ticks = _tick_until_settled()
    assert ticks > 3  # the keys were prepared in slices across timer ticks
    new = set(bpy.data.actions) - actions - {e.animation_data.action for e in empties}
    (action,) = new
    assert obj.animation_data.action == action and action[results.PROP_GROUP] == request_id
    assert tuple(action.frame_range) == (5.0, 251.0)  # one Action over the whole shot: 8.2 s at 30 fps
    pelvis = obj.pose.bones[armature.rig_bone_map(obj).sources[0].bones[0]]
    for k, t in enumerate(times):
        scene.frame_set(5 + round(t * 30))
        head = np.array(obj.matrix_world @ pelvis.head)
        assert np.linalg.norm(head[:2] - world[k][:2]) < 0.02, (rig, k, head, world[k])


def test_refused_shots_name_the_object_and_leave_the_scene_as_it_was(client) -> None:
    scene = bpy.context.scene
    scene.render.fps, scene.frame_current = 20, 1
    set_segments([("a person walks forward", 5.0)])
    late = keyed_empty("Late", [(1 + 20 * 8, np.array([0.0, -2.0, 0.0]))])
    add_mark(late, "WAYPOINT")
    objects = set(bpy.data.objects)
    with pytest.raises(RuntimeError, match=r"'Late' at frame 161: waypoints\[0\]\.time: 8 s is outside 0\.05\.\.5 s"):
        bpy.ops.motion.generate_shot()  # no armature selected: one would be created, and is removed again
    assert set(bpy.data.objects) == objects and not bpy.data.armatures
    bpy.context.scene.motiongpt3_shot.marks.clear()
    loose = bpy.data.objects.new("Loose", None)
    scene.collection.objects.link(loose)
    add_mark(loose, "LEFT_HAND")
    with pytest.raises(RuntimeError, match="'Loose' has no location keys"):
        bpy.ops.motion.generate_shot()
    bpy.context.scene.motiongpt3_shot.marks.clear()
    far = keyed_empty("Far", [(21, np.array([0.0, -30.0, 0.0]))])  # 30 m in 1 s
    add_mark(far, "WAYPOINT")
    with pytest.raises(RuntimeError, match=r"'Far' at frame 21: waypoints\[0\]\.position: 30\.00 m in 1\.00 s"):
        bpy.ops.motion.generate_shot()
    set_segments([])
    with pytest.raises(RuntimeError, match="the shot has no segments"):
        bpy.ops.motion.generate_shot()
    assert client.sent == []


class RecordingLayout:
    """Stands in for a UILayout: every prop, list and operator drawn must exist on the data / be registered."""

    def __init__(self, drawn: list[str]) -> None:
        self.drawn = drawn

    def row(self, **_: object) -> RecordingLayout:
        return self

    column = row

    def label(self, text: str = "", **_: object) -> None:
        self.drawn.append(f"label {text}")

    def separator(self, **_: object) -> None:
        pass

    def prop(self, data: object, name: str, **_: object) -> None:
        assert hasattr(data, name), name
        self.drawn.append(f"prop {name}")

    def template_list(self, kind: str, _id: str, data: object, name: str, active: object, index: str, **_: object):
        assert hasattr(bpy.types, kind) and hasattr(data, name) and hasattr(active, index), (kind, name, index)
        self.drawn.append(f"list {name}")

    def operator(self, idname: str, **_: object) -> object:
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name) and getattr(getattr(bpy.ops, module), name).poll() is not None
        self.drawn.append(f"operator {idname}")
        return type("Properties", (), {})()


def test_the_shot_panel_and_its_lists_draw_what_exists(client) -> None:
    from types import SimpleNamespace

    from blender_addon import shot_ui

    set_segments([("a person walks forward", 4.0), ("a person waves", 2.5)])
    add_mark(keyed_empty("Door", [(10, np.zeros(3))]), "WAYPOINT")
    drawn: list[str] = []
    shot_ui.MOTION_PT_shot.draw(SimpleNamespace(layout=RecordingLayout(drawn)), bpy.context)
    assert "label Segments: 6.5 s of at most 60 s" in drawn
    assert {"list segments", "list marks", "prop path", "operator motion.generate_shot"} <= set(drawn)
    shot = bpy.context.scene.motiongpt3_shot
    for list_type, items in (
        (shot_ui.MOTION_UL_shot_segments, shot.segments),
        (shot_ui.MOTION_UL_shot_marks, shot.marks),
    ):
        list_type.draw_item(None, bpy.context, RecordingLayout(drawn), shot, items[0], 0, shot, "")
    assert {"prop text", "prop seconds", "prop obj", "prop role"} <= set(drawn)
