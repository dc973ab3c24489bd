"""Motion on the control rigs animators use, in real Blender: the rig Blender's bundled Rigify generates from its
Human metarig (IK and FK), and a rig of our own whose deform bones follow control bones through constraints
(copy rotation, child-of) and drivers, with long legs and a short torso. A 9.5 s walk with two jumps is generated
onto each through the add-on's job flow; what Blender evaluates on the deform bones is measured against the motion
(segment directions, contact feet, sliding, travel), the motion is read back (Caption), and the animator's own Action
and every bone outside the mapping must be unchanged. Figures are printed per rig and mode (`pytest -s`)."""

from __future__ import annotations

import json
from pathlib import Path

import bpy
import numpy as np
import pytest
from mathutils import Matrix, Vector
from reference import walk_jump_clip
from rig_figures import leg_scale, motion_figures, read_back_figures
from scripted_client import Event
from test_blender_addon import _snapshot, _tick_until_settled
from test_blender_rigs import RIGS, _generate_on, build_rig

from blender_addon import action_io, armature, operators
from shared.motion.align import yaw_matrix
from shared.motion.axes import yup_to_zup, zup_to_yup
from shared.motion.humanml3d import features_to_joints
from shared.motion.skeleton import JOINT_NAMES, PARENTS, children_of, tpose_joints

pytestmark = pytest.mark.usefixtures("addon")

# The deform bone whose head is each SMPL joint on Rigify's generated rig (the bones that move the mesh; the add-on
# reads the ORG- bones and keys the controls).
RIGIFY_DEFORM = ("DEF-spine", "DEF-thigh.L", "DEF-thigh.R", "DEF-spine.001", "DEF-shin.L", "DEF-shin.R",
                 "DEF-spine.002", "DEF-foot.L", "DEF-foot.R", "DEF-spine.003", "DEF-toe.L", "DEF-toe.R",
                 "DEF-spine.004", "DEF-shoulder.L", "DEF-shoulder.R", "DEF-spine.006", "DEF-upper_arm.L",
                 "DEF-upper_arm.R", "DEF-forearm.L", "DEF-forearm.R", "DEF-hand.L", "DEF-hand.R")  # fmt: skip
IK_SWITCHES = ("thigh_parent.L", "thigh_parent.R", "upper_arm_parent.L", "upper_arm_parent.R")
LIMITS = {"direction_mean": 2.0, "direction_max": 10.0, "foot_height_max": 0.02, "sliding": 0.02}


@pytest.fixture(scope="module")
def walk_jump() -> tuple[np.ndarray, np.ndarray]:
    return walk_jump_clip()


@pytest.fixture(scope="module")
def rigify_blend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rig Rigify generates from its Human metarig, made once per module (5-10 s) and saved to a .blend that each
    test appends; Rigify is disabled again afterwards."""
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    try:
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        assert bpy.ops.object.armature_human_metarig_add() == {"FINISHED"}
        assert bpy.ops.pose.rigify_generate() == {"FINISHED"}
        rig = bpy.context.active_object
        path = tmp_path_factory.mktemp("rigify") / "rigify_generated.blend"
        bpy.data.libraries.write(str(path), {rig})
        return path
    finally:
        addon_utils.disable("rigify", default_set=True)


def _append_rig(path: Path, name: str = "rig") -> bpy.types.Object:
    with bpy.data.libraries.load(str(path)) as (_, into):
        into.objects = [name]
    obj = into.objects[0]
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    return obj


def _generate(obj: bpy.types.Object, client, features: np.ndarray) -> str:
    request_id, ticks = _generate_on(obj, client, features, limit=20000)
    job = operators.CONTROLLER.jobs[request_id]
    assert job.status == "done", job.message
    spent = np.array(operators.CONTROLLER.tick_seconds) * 1000.0  # for information: speed goals live in benchmarks
    print(f"\n{obj.name}: {ticks} ticks, median {np.median(spent):.1f} ms, longest {spent.max():.1f} ms")
    return job.message


def _read_back(obj: bpy.types.Object, client, count: int) -> np.ndarray:
    """The features Caption sends for frames 1..count of the armature."""
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, count
    settings = scene.motiongpt3
    settings.use_scene_range = True
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.motion.caption() == {"FINISHED"}
    _tick_until_settled(20000)
    assert client.sent[-1][1] == "caption"
    return client.sent[-1][3]["features"]


def _joints(obj: bpy.types.Object, bones: tuple[str, ...], count: int) -> np.ndarray:
    """(count, 22, 3) heads of `bones` as Blender evaluates frames 1..count: world, Y-up."""
    scene = bpy.context.scene
    out = np.empty((count, 22, 3))
    for t in range(count):
        scene.frame_set(t + 1)
        out[t] = [tuple(obj.matrix_world @ obj.pose.bones[n].head) for n in bones]
    return zup_to_yup(out)


def _rest(obj: bpy.types.Object, bones: tuple[str, ...]) -> np.ndarray:
    return zup_to_yup(np.array([tuple(obj.matrix_world @ obj.data.bones[n].head_local) for n in bones]))


def _user_action(obj: bpy.types.Object, keyed: tuple[str, ...]) -> bpy.types.Action:
    """The animator's own Action: keys on a few bones (mapped controls and others) at frames 1 and 30."""
    for frame, angle in ((1, 0.0), (30, 0.4)):
        for name in keyed:
            pb = obj.pose.bones[name]
            if pb.rotation_mode == "QUATERNION":
                pb.rotation_quaternion = (np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0)
            else:
                pb.rotation_euler = (angle, 0.0, 0.0)
            prop = "rotation_quaternion" if pb.rotation_mode == "QUATERNION" else "rotation_euler"
            pb.keyframe_insert(prop, frame=frame)
    return obj.animation_data.action


def _basis(obj: bpy.types.Object) -> dict[str, tuple]:
    return {pb.name: tuple(np.round(np.array(pb.matrix_basis), 9).ravel()) for pb in obj.pose.bones}


def _keyed_bones(action: bpy.types.Action) -> set[str]:
    return action_io.action_bone_names(action)


def _check(label: str, figures, read) -> None:
    print(f"\n{label}: {figures.row()}; {read.row()}")
    for name, limit in LIMITS.items():
        assert getattr(figures, name) <= limit, (label, name, getattr(figures, name))
    assert abs(figures.travel - 1.0) <= 0.05, (label, figures.travel)
    assert read.joints_mean <= 0.03 and read.joints_max <= 0.06 and abs(read.travel - 1.0) <= 0.03, (label, read)


def test_generated_rigify_rig_follows_the_motion_in_fk_and_ik(client, walk_jump, rigify_blend) -> None:
    features, _ = walk_jump
    rig = _append_rig(rigify_blend)
    assert armature.rig_match(rig).preset == "rigify"
    user = _user_action(rig, ("torso", "f_index.01.L", "thigh_fk.L"))
    user_keys = _snapshot(user)
    bpy.context.scene.frame_set(1)
    before = _basis(rig)
    message = _generate(rig, client, features)
    print(message)
    assert "FK and IK controls keyed" in message, message
    action = rig.animation_data.action
    assert action is not user and _snapshot(user) == user_keys and user.use_fake_user  # the user's Action as it was
    keyed = _keyed_bones(action)
    controls = {"torso", "spine_fk", "neck", "head", "shoulder.L", "shoulder.R"}
    assert controls <= keyed and {"foot_ik.L", "hand_ik.R", "thigh_ik.L", "toe_ik.R"} <= keyed
    assert not any(n.startswith(("DEF-", "ORG-", "MCH-", "f_", "thumb", "tweak", "jaw", "eye", "ear")) for n in keyed)
    after = _basis(rig)  # bones the new Action does not key keep the pose they had (fingers, face, tweaks, ...)
    assert {n: v for n, v in after.items() if n not in keyed} == {n: v for n, v in before.items() if n not in keyed}

    source = features_to_joints(features)
    contacts = features[:, 259:263] > 0.5
    count = len(source)
    rest = _rest(rig, RIGIFY_DEFORM)
    floor = rest[[7, 8, 10, 11], 1].min()
    scale = leg_scale(rest)
    for mode, switch in (("FK", 1.0), ("IK", 0.0)):  # Rigify's IK_FK: 1 = FK, 0 = IK (its default)
        for name in IK_SWITCHES:
            rig.pose.bones[name]["IK_FK"] = switch
        rig.update_tag()  # a custom property set from Python tags nothing: the switch's drivers must see it
        got = _joints(rig, RIGIFY_DEFORM, count)
        got[..., 1] -= floor
        figures = motion_figures(got, source, contacts, scale)
        read = read_back_figures(_read_back(rig, client, count), features)
        _check(f"Rigify generated rig, {mode} (bpy {bpy.app.version_string})", figures, read)


def _curve_values(action: bpy.types.Action, path: str, frames: range) -> np.ndarray:
    """(len(frames), 3) the Action's F-curves of a 3-vector property evaluated at `frames`."""
    curves = {fc.array_index: fc for fc in action_io.all_fcurves(action) if fc.data_path == path}
    assert sorted(curves) == [0, 1, 2], (path, sorted(curves))
    return np.array([[curves[i].evaluate(f) for i in range(3)] for f in frames])


def test_inbetween_keys_pass_the_ik_targets_through_the_users_keys(client, walk_jump, rigify_blend) -> None:
    """In-between Keys on the generated Rigify rig in IK: the animator keyed only the left foot's IK target (raised,
    at frames 1 and 30); the scripted motion ignores it. The new Action must hold the user's foot_ik.L location at
    both keys and reach it without a pop (each frame's step near a key no larger than the motion's own steps)."""
    features, _ = walk_jump
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    scene.frame_start, scene.frame_end = 1, 60
    scene.motiongpt3.inbetween_prompt = ""
    rig = _append_rig(rigify_blend)
    for name in IK_SWITCHES:
        rig.pose.bones[name]["IK_FK"] = 0.0  # IK
    rig.update_tag()
    foot = rig.pose.bones["foot_ik.L"]
    rig.animation_data_create().action = bpy.data.actions.new("blocking")
    raised = {1: (0.30, -0.25, 0.30), 30: (-0.20, 0.30, 0.25)}  # metres: far from anywhere the walk puts the foot
    for frame, location in raised.items():
        foot.location = location
        foot.keyframe_insert("location", frame=frame)
    user = rig.animation_data.action
    user_keys = _snapshot(user)
    bpy.context.view_layer.objects.active = rig
    assert bpy.ops.motion.inbetween_keys() == {"FINISHED"}
    _tick_until_settled(20000)
    request_id, kind, _, arrays = client.sent[-1]
    assert kind == "inbetween" and np.flatnonzero(arrays["known"]).tolist() == [0, 29]
    motion = features[40 : 40 + len(arrays["features"])].astype(np.float32)
    client.queue = [Event("result", request_id, {}, {"motions": motion[None]})]
    _tick_until_settled(20000)
    job = operators.CONTROLLER.jobs[request_id]
    assert job.status == "done", job.message

    new = rig.animation_data.action
    assert new is not user and _snapshot(user) == user_keys
    path = 'pose.bones["foot_ik.L"].location'
    got = _curve_values(new, path, range(1, 31))
    np.testing.assert_allclose(got[[0, 29]], [raised[1], raised[30]], atol=1e-5)  # through both keys
    right = _curve_values(new, 'pose.bones["foot_ik.R"].location', range(1, 31))  # the motion's own foot steps
    own = float(np.linalg.norm(np.diff(right, axis=0), axis=-1).max())
    steps = np.linalg.norm(np.diff(got, axis=0), axis=-1)
    print(f"\nfoot_ik.L steps next to the keys {steps[0] * 100:.1f} / {steps[-1] * 100:.1f} cm, the motion's own "
          f"foot steps up to {own * 100:.1f} cm, the keys {np.linalg.norm(raised[1]) * 100:.0f} cm off")  # fmt: skip
    assert own < 0.2 and steps.max() < own + 0.05, (steps.round(3), own)


# -- a constraint-driven control rig of our own --------------------------------------------------------------------

LONG_LEGS = {1: 1.0, 2: 1.0, 4: 1.25, 5: 1.25, 7: 1.25, 8: 1.25, 10: 1.1, 11: 1.1}  # thighs, shins, feet
SHORT_TORSO = {3: 0.85, 6: 0.85, 9: 0.85, 12: 0.9}


def _proportioned_rest() -> np.ndarray:
    """(22, 3) Y-up rest: the SMPL T-pose with long legs and a short torso, standing on y = 0."""
    offsets = tpose_joints() - tpose_joints()[list(np.maximum(PARENTS, 0))]
    offsets[0] = 0.0
    for j, k in {**LONG_LEGS, **SHORT_TORSO}.items():
        offsets[j] *= k
    rest = tpose_joints(offsets)
    rest[:, 1] -= rest[[7, 8, 10, 11], 1].min()
    return rest


def _tail(heads: np.ndarray, j: int) -> np.ndarray:
    kids = children_of(j)
    if kids:
        return heads[{0: 3, 9: 12}.get(j, kids[0])]
    return heads[j] + 0.3 * (heads[j] - heads[PARENTS[j]])


def _constraint_rig() -> bpy.types.Object:
    """CTL_<joint>: FK controls in the SMPL hierarchy (random rolls); DEF_<joint>: deform bones in their own hierarchy
    (other rolls) that follow the controls: child-of (pelvis), world-space copy rotation (legs, spine3, neck, collars,
    arms), drivers (spine1 and spine2 copy the control's rotation channel by channel, the head a copy rotation whose
    influence a driver holds at 1); plus bones outside the mapping (a finger, a jaw, a prop)."""
    heads = yup_to_zup(_proportioned_rest())
    rng = np.random.default_rng(3)
    data = bpy.data.armatures.new("ControlRig")
    obj = bpy.data.objects.new("ControlRig", data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    made: dict[str, bpy.types.EditBone] = {}
    for prefix in ("CTL_", "DEF_"):
        for j, name in enumerate(JOINT_NAMES):
            eb = data.edit_bones.new(prefix + name)
            eb.head, eb.tail = Vector(heads[j]), Vector(_tail(heads, j))
            eb.roll = 0.0 if name in ("spine1", "spine2") else float(rng.uniform(-np.pi, np.pi))
            made[prefix + name] = eb
        for j, name in enumerate(JOINT_NAMES):
            if PARENTS[j] >= 0:
                made[prefix + name].parent = made[prefix + JOINT_NAMES[PARENTS[j]]]
    for extra, parent in (("CTL_finger", "CTL_left_wrist"), ("DEF_jaw", "DEF_head"), ("prop", None)):
        eb = data.edit_bones.new(extra)
        base = made[parent].tail if parent else Vector((0.5, 0.0, 0.0))
        eb.head, eb.tail = base.copy(), base + Vector((0.0, 0.0, 0.05))
        eb.parent = made[parent] if parent else None
    made["DEF_pelvis"].parent = None  # follows CTL_pelvis through Child Of
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.matrix_world = Matrix.Translation((-1.0, 2.0, 0.0)) @ Matrix.Rotation(0.6, 4, "Z")
    bones = obj.pose.bones
    child_of = bones["DEF_pelvis"].constraints.new("CHILD_OF")
    child_of.target, child_of.subtarget = obj, "CTL_pelvis"
    child_of.inverse_matrix = (obj.matrix_world @ obj.data.bones["CTL_pelvis"].matrix_local).inverted()
    for name in JOINT_NAMES[1:]:
        if name in ("spine1", "spine2"):  # drivers: rotation copied channel by channel (same rolls)
            bones["DEF_" + name].rotation_mode = "QUATERNION"
            for i in range(4):
                fc = bones["DEF_" + name].driver_add("rotation_quaternion", i)
                var = fc.driver.variables.new()
                var.targets[0].id = obj
                var.targets[0].data_path = f'pose.bones["CTL_{name}"].rotation_quaternion[{i}]'
                fc.driver.expression = var.name
            continue
        copy = bones["DEF_" + name].constraints.new("COPY_ROTATION")
        copy.target, copy.subtarget = obj, "CTL_" + name
        copy.target_space = copy.owner_space = "WORLD"
        if name == "head":
            fc = copy.driver_add("influence")
            var = fc.driver.variables.new()
            var.targets[0].id = obj
            var.targets[0].data_path = 'pose.bones["prop"].location[2]'
            fc.driver.expression = f"1.0 - {var.name}"
    mapping = {
        "name": "control_rig",
        "unit_to_metres": 1.0,
        "joints": {name: {"joint": "DEF_" + name} for name in JOINT_NAMES},
        "drive": {name: "CTL_" + name for name in JOINT_NAMES},
    }
    obj.data[armature.PROP_BONE_MAP] = json.dumps(mapping)
    return obj


def test_constraint_driven_rig_with_other_proportions_follows_the_motion(client, walk_jump) -> None:
    features, _ = walk_jump
    rig = _constraint_rig()
    user = _user_action(rig, ("CTL_left_knee", "CTL_finger"))
    user_keys = _snapshot(user)
    bpy.context.scene.frame_set(1)
    before = _basis(rig)
    _generate(rig, client, features)
    action = rig.animation_data.action
    assert _snapshot(user) == user_keys
    keyed = _keyed_bones(action)
    assert keyed == {"CTL_" + name for name in JOINT_NAMES}
    drivers = rig.animation_data.drivers
    moved = keyed | {d.data_path.split('"')[1] for d in drivers if d.data_path.endswith("rotation_quaternion")}
    after = _basis(rig)  # bones neither keyed nor driven keep their pose (the finger, the jaw, the prop)
    assert {n: v for n, v in after.items() if n not in moved} == {n: v for n, v in before.items() if n not in moved}

    deform = tuple("DEF_" + name for name in JOINT_NAMES)
    source = features_to_joints(features)
    count = len(source)
    rest = _rest(rig, deform)
    facing = 0.6  # the object's turn about Z: back into the facing frame (rest faces -Y in Blender = +Z in Y-up)
    turn = np.array([[np.cos(facing), 0.0, np.sin(facing)], [0.0, 1.0, 0.0], [-np.sin(facing), 0.0, np.cos(facing)]])
    got = _joints(rig, deform, count) @ turn
    got[..., 1] -= rest[[7, 8, 10, 11], 1].min()
    scale = leg_scale(rest)
    assert scale > 1.15  # long legs indeed
    figures = motion_figures(got, source, features[:, 259:263] > 0.5, scale)
    read = read_back_figures(_read_back(rig, client, count), features)
    _check(f"constraint rig, long legs (bpy {bpy.app.version_string})", figures, read)


@pytest.mark.parametrize("kind", sorted(RIGS))
def test_preset_rigs_meet_the_same_figures(kind, client, walk_jump) -> None:
    """The plainly parented preset rigs of test_blender_rigs.py (Mixamo in FBX axes and centimetres, Rigify metarig in
    A-pose, SMPL-X, UE5 with random rolls; turned, moved, scaled) on the same walk with jumps."""
    features, _ = walk_jump
    obj, _, facing = build_rig(kind, features)
    names, prefix = RIGS[kind][0], RIGS[kind][1]
    bones = tuple(prefix + n for n in names)
    _generate(obj, client, features)
    quarter = round(facing / (np.pi / 2)) * np.pi / 2  # modelled facing an axis: snapped, as the add-on does
    turn = yaw_matrix(quarter if abs(facing - quarter) < np.radians(10) else facing)
    source = features_to_joints(features)
    rest = _rest(obj, bones) @ turn
    got = _joints(obj, bones, len(source)) @ turn
    got[..., 1] -= rest[[7, 8, 10, 11], 1].min()
    figures = motion_figures(got, source, features[:, 259:263] > 0.5, leg_scale(rest))
    read = read_back_figures(_read_back(obj, client, len(source)), features)
    _check(f"preset rig {kind} (bpy {bpy.app.version_string})", figures, read)


# -- one leg-length convention: Blender's importer + the add-on's read-back against the CLI's reader ---------------


def test_a_bvh_read_back_in_blender_travels_as_the_cli_encodes_it(client, tmp_path) -> None:
    """A real CMU clip (131_01: start, walk, stop) imported by Blender's own BVH importer and read back by the add-on
    (Caption's features) against `motiongpt3 encode`'s path for the same file (read_bvh → bone map → features):
    the same root travel within 1 %. (Joints differ by design, a few centimetres: the add-on carries the performer's
    pelvis and chest onto SMPL's as rigid triads and keeps planted feet where the performer's stand, where
    HumanML3D's recipe keeps every bone's direction.)"""
    from reference import cmu_clip, gunzip_to

    from shared.motion.bvh import read_bvh
    from shared.motion.bvh_mapping import bvh_joints_metres
    from shared.motion.pipeline import encode_joints

    path = gunzip_to(cmu_clip("131_01"), tmp_path)
    clip = read_bvh(path)
    joints, bone_map, _ = bvh_joints_metres(clip)
    cli = encode_joints(joints, clip.fps)
    result = bpy.ops.import_anim.bvh(filepath=str(path), axis_forward="-Z", axis_up="Y", use_fps_scale=False,
                                     update_scene_fps=True, update_scene_duration=True)  # fmt: skip
    assert result == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert armature.rig_match(obj).preset == bone_map.name
    sent = _read_back(obj, client, clip.num_frames)
    read = read_back_figures(sent, cli)
    print(f"\nBVH {path.name} in Blender vs the CLI (bpy {bpy.app.version_string}): {read.row()}")
    assert abs(read.travel - 1.0) <= 0.01, read
