"""Rest-pose-aware retargeting in numpy (no Blender): rig presets, auto-detection, the rotation solve against each
rig's own rest (A/T pose, any roll, object transform, extra bones), leg-length scaling and foot planting."""

from __future__ import annotations

import numpy as np
import pytest
from rig_builders import MIXAMO, RIGIFY, a_pose, reference_rest
from scipy.spatial.transform import Rotation

from shared.motion.align import yaw_matrix
from shared.motion.axes import yup_to_zup, zup_to_yup
from shared.motion.bone_map import bone_map_data, load_bone_map, parse_bone_map
from shared.motion.humanml3d import features_to_joints
from shared.motion.proportions import CARRIERS
from shared.motion.retarget import (
    RigRest,
    character_frame,
    contacts_at_rate,
    leg_scale,
    place_motion,
    plant_feet,
    solve_rig_pose,
)
from shared.motion.rig_joints import describe_missing, detect_rig_map, match_preset
from shared.motion.skeleton import JOINT_NAMES, PARENTS, children_of, tpose_joints

P = np.array(PARENTS[1:])
LEGS = ((1, 4, 7), (2, 5, 8))


def _frame(y: np.ndarray, roll: float) -> np.ndarray:
    y = y / np.linalg.norm(y)
    helper = np.array([0.0, 0.0, 1.0]) if abs(y[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(y, helper)
    x /= np.linalg.norm(x)
    z = np.cross(x, y)
    c, s = np.cos(roll), np.sin(roll)
    return np.stack([c * x - s * z, y, s * x + c * z], 1)


def _rig(names: tuple[str, ...], heads: np.ndarray, rolls: np.ndarray, split_spine: bool = False) -> RigRest:
    """A rig with a bone per SMPL joint (head on the joint) plus a twist bone and, optionally, an unmapped spine
    segment between spine1 and spine2 (as UE5's spine_02)."""
    bones, parents, mats, lengths = [], [], [], []

    def add(name: str, parent: str | None, head: np.ndarray, tail: np.ndarray, roll: float) -> None:
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = _frame(tail - head, roll), head
        bones.append(name), parents.append(parent), mats.append(m), lengths.append(np.linalg.norm(tail - head))

    for j in range(22):
        kids = children_of(j)
        tail = heads[{0: 3, 9: 12}.get(j, kids[0])] if kids else heads[j] + 0.3 * (heads[j] - heads[PARENTS[j]])
        parent = names[PARENTS[j]] if PARENTS[j] >= 0 else None
        if split_spine and j == 6:
            parent = "extra_spine"
        add(names[j], parent, heads[j], tail, rolls[j])
    if split_spine:
        add("extra_spine", names[3], 0.5 * (heads[3] + heads[6]), heads[6], 0.3)
    add("twist_upperarm_l", names[16], 0.5 * (heads[16] + heads[18]), heads[18], 1.0)
    return RigRest.from_bones(bones, parents, np.array(mats), lengths)


def _fk(rig: RigRest, pose, world: np.ndarray) -> dict[str, np.ndarray]:
    """Independent FK of Blender's formula P_b = P_parent·R_parent⁻¹·R_b·B_b; world heads (T, 4) per bone."""
    count = len(pose.rotations)
    basis = {n: pose.rotations[:, i] for i, n in enumerate(pose.bones)}
    posed: list[np.ndarray] = []
    out = {}
    for b, name in enumerate(rig.names):
        m = np.tile(np.eye(4), (count, 1, 1))
        if name in basis:
            m[:, :3, :3] = basis[name]
        if name == pose.root_bone:
            m[:, :3, 3] = pose.root_locations
        p = rig.parents[b]
        local = rig.rest[b] if p < 0 else np.linalg.inv(rig.rest[p]) @ rig.rest[b]
        posed.append((local if p < 0 else posed[p] @ local) @ m)
        out[name] = (world @ posed[b])[:, :3, 3]
    return out


def _directions(joints: np.ndarray) -> np.ndarray:
    d = joints[:, 1:] - joints[:, P]
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)))


# names, preset, A-pose, armature data Y-up in cm (a Mixamo FBX import: object rotated 90° about X, scale 0.01)
# or Z-up in metres (object turned about Z by `yaw`)
CASES = {
    "mixamo_cm_tpose": (MIXAMO, "mixamo", False, True, 0.0),
    "rigify_apose": (RIGIFY, "rigify_metarig", True, False, 1.1),
    "smplx_random_rolls": (tuple(JOINT_NAMES), "smplx", False, False, -2.0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bone_directions_follow_the_source_on_any_rest_roll_and_object_transform(case, cmu_walk) -> None:
    names, preset, apose, fbx_cm, yaw_z = CASES[case]
    features = cmu_walk[0]
    rest = reference_rest(features)
    if apose:
        rest = a_pose(rest, 40.0)
    rolls = np.random.default_rng(len(case)).uniform(-np.pi, np.pi, 22)
    rig = _rig(names, (rest * 100.0 if fbx_cm else yup_to_zup(rest)) * 1.07, rolls, split_spine=True)
    world = np.eye(4)
    world[:3, :3] = Rotation.from_euler("xz", [np.pi / 2 if fbx_cm else 0.0, yaw_z]).as_matrix() / (
        100.0 if fbx_cm else 1.0
    )
    world[:3, 3] = (2.0, -1.0, 0.0)
    match = detect_rig_map({n: (None if p < 0 else rig.names[p]) for n, p in zip(rig.names, rig.parents, strict=True)})
    assert match.preset == preset and match.complete
    frame = character_frame(world, 1.0, rig.rest_joints(match.bone_map))
    rest_character = frame.world_to_character(frame.armature_to_world(rig.rest_joints(match.bone_map)))
    source = features_to_joints(features)
    placed = place_motion(source, rest_character)
    pose = solve_rig_pose(placed, rig, match.bone_map, frame)
    assert "twist_upperarm_l" not in pose.bones and "extra_spine" not in pose.bones
    heads = _fk(rig, pose, world)
    # Into the rig's facing frame, independently: facing = up × (right − left) of the rest hips + shoulders.
    across_rest = rest[2] - rest[1] + rest[17] - rest[16]
    across = zup_to_yup(world[:3, :3] @ (across_rest if fbx_cm else yup_to_zup(across_rest)))
    yaw = np.arctan2(across[2], -across[0])
    if abs(yaw - round(yaw / (np.pi / 2)) * np.pi / 2) < np.radians(10):  # facing an axis, up to asymmetries
        yaw = round(yaw / (np.pi / 2)) * np.pi / 2
    got_yup = zup_to_yup(np.stack([heads[n] for n in names], 1)) @ yaw_matrix(yaw)
    error = _angle(_directions(got_yup), _directions(source))
    # The pelvis and chest carry their children rigidly (their rest shape is the rig's): those bones follow the
    # fitted rotation, within the decoded triads' own non-rigidity; every other bone follows the source's direction.
    carried = np.isin(np.arange(1, 22), [j for j in range(22) if PARENTS[j] in CARRIERS])
    assert error[:, carried].max() < 0.5, error[:, carried].max(0).round(3)
    assert error[:, ~carried].max() < 0.05, (error.max(0).round(3), error.max(1).round(2)[:10])
    # Left stays left: the left hip is on the left of the facing direction in every frame.
    across = got_yup[:, 1] - got_yup[:, 2]
    assert (np.sign(across[:, 0]) == np.sign(source[:, 1, 0] - source[:, 2, 0])).mean() > 0.99
    # Feet: on the source's contact frames the lowest foot sits at the source's (scaled) height over the floor.
    floor = frame.armature_to_world(rig.rest_joints(match.bone_map))[[7, 8, 10, 11], 1].min()
    scale = leg_scale(rest_character)
    contact = (features[:, 259:263] > 0.5).any(1)
    lowest = got_yup[:, [7, 8, 10, 11], 1].min(1) - floor
    np.testing.assert_allclose(lowest[contact], scale * source[contact][:, [7, 8, 10, 11], 1].min(1), atol=0.005)


def test_detection_prefers_the_right_preset_and_names_missing_joints() -> None:
    def rig(names, extra=()):
        parents = {n: (names[PARENTS[j]] if PARENTS[j] >= 0 else None) for j, n in enumerate(names)}
        parents.update({e: names[0] for e in extra})
        return parents

    prefixed = tuple(f"mixamorig1:{n}" for n in MIXAMO)
    assert detect_rig_map(rig(prefixed)).bone_map.sources[20].bones == ("mixamorig1:LeftHand",)
    assert detect_rig_map(rig(MIXAMO)).preset == "mixamo"
    ue5 = tuple(load_bone_map("ue5_mannequin").bones())
    assert detect_rig_map(rig(ue5, ("spine_02", "spine_04", "neck_02"))).preset == "ue5_mannequin"
    ue4 = tuple(load_bone_map("ue4_mannequin").bones())
    assert detect_rig_map(rig(ue4)).preset == "ue4_mannequin"
    # Names right but hierarchy wrong (the shin hangs off the pelvis, not the thigh): the score says so.
    wrong = rig(RIGIFY)
    wrong["shin.L"] = "spine"
    assert match_preset(load_bone_map("rigify_metarig"), wrong).hierarchy < 1.0
    # An unmappable rig: the closest preset and every joint it cannot find are named.
    partial = {n: p for n, p in rig(MIXAMO).items() if n not in ("LeftHand", "RightToeBase")}
    match = detect_rig_map(partial)
    assert match.preset == "mixamo" and match.missing == ("right_foot", "left_wrist")
    assert describe_missing(match) == (
        "closest bone-map preset 'mixamo' finds no bone for: right_foot (RightToeBase), left_wrist (LeftHand)"
    )


def test_user_preset_round_trips_through_json() -> None:
    bone_map = load_bone_map("rigify")
    again = parse_bone_map(bone_map_data(bone_map), "rigify")
    assert again == bone_map


def test_plant_feet_keeps_planted_ankles_still_and_bone_lengths(cmu_walk) -> None:
    features = cmu_walk[0]
    joints = features_to_joints(features)
    contacts = contacts_at_rate(features[:, 259:263], len(joints), 20.0)
    planted = plant_feet(joints, contacts)
    lengths = lambda j: np.linalg.norm(j[:, 1:] - j[:, P], axis=-1)  # noqa: E731
    np.testing.assert_allclose(lengths(planted), lengths(joints), atol=1e-9)
    left = contacts[:, 0] | contacts[:, 1]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], left.astype(int), [0]])))
    leg = lengths(joints)[0, [3, 6]].sum()  # hip → knee → ankle
    moved = 0.0
    for start, end in zip(edges[0::2], edges[1::2], strict=True):
        run = planted[start:end, 7]
        # The spot is moved within the leg's reach of every hip position of the run (else the leg goes straight).
        assert (np.linalg.norm(run - planted[start:end, 1], axis=-1) < leg * (1 - 1e-6)).all()
        assert np.ptp(run, axis=0).max() < 1e-9  # still
        moved = max(moved, np.ptp(joints[start:end, 7], axis=0).max())
    assert moved > 0.01  # the source's ankle did slide: the clean-up had something to do
    legs_below_hip = [4, 5, 7, 8, 10, 11]
    others = [j for j in range(22) if j not in legs_below_hip]
    np.testing.assert_array_equal(planted[:, others], joints[:, others])  # only knees, ankles and balls move


def test_leg_scale_and_in_place(cmu_walk) -> None:
    rest = reference_rest(cmu_walk[0])
    source = features_to_joints(cmu_walk[0])
    placed = place_motion(source, rest * 2.0)
    np.testing.assert_allclose(leg_scale(rest * 2.0), 2.0 * leg_scale(rest))
    # Leg length as HumanML3D's `uniform_skeleton` measures it (HUMANML3D.md §3.3: right thigh + right shin,
    # joints 2 → 5 → 8): the T-pose's (HumanML3D lengths) against this rest's, by hand.
    smpl = tpose_joints()
    legs = lambda j: np.linalg.norm(j[5] - j[2]) + np.linalg.norm(j[8] - j[5])  # noqa: E731
    np.testing.assert_allclose(leg_scale(rest), legs(rest) / legs(smpl))
    longer_left = rest.copy()
    longer_left[[4, 7, 10]] += longer_left[[4, 7, 10]] - longer_left[1]  # the left leg twice as long: no change
    np.testing.assert_allclose(leg_scale(longer_left), leg_scale(rest))
    scale = leg_scale(rest * 2.0)
    np.testing.assert_allclose(placed[:, 0, [0, 2]], source[:, 0, [0, 2]] * scale)
    # Heights scale too, lifted so that the rig's rest stands on the floor: a constant offset (rest height − scaled
    # SMPL rest height, pelvis over the lowest foot joint).
    standing = lambda j: j[0, 1] - j[[7, 8, 10, 11], 1].min()  # noqa: E731
    lift = standing(rest * 2.0) - scale * standing(smpl)
    np.testing.assert_allclose(placed[:, 0, 1], source[:, 0, 1] * scale + lift)
    still = place_motion(source, rest, in_place=True)
    np.testing.assert_allclose(still[:, 0, [0, 2]], np.broadcast_to(still[:1, 0, [0, 2]], (len(still), 2)))
    np.testing.assert_allclose(still[:, 0, 1], placed[:, 0, 1] / 2.0)  # half the rig: half the lift, too


def test_read_back_of_real_clips_travels_as_the_cli_encodes_them() -> None:
    """The add-on's read-back (`on_smpl_body`: a performer's joints carried onto SMPL's body) against the CLI's encoder
    (HumanML3D's recipe: the root scaled by the leg ratio) on the 44 bundled CMU clips, each clip's own rest as the
    rig: the same root path length (one leg-length convention, and the pelvis never moved step by step)."""
    from dataclasses import replace
    from pathlib import Path

    from shared.motion.bone_map import bvh_to_smpl_joints
    from shared.motion.bvh import read_bvh
    from shared.motion.bvh_mapping import bvh_joints_metres
    from shared.motion.pipeline import encode_joints
    from shared.motion.retarget import on_smpl_body

    def path_length(features: np.ndarray) -> float:
        root = features_to_joints(features)[:, 0]
        return float(np.linalg.norm(np.diff(root[:, [0, 2]], axis=0), axis=-1).sum())

    ratios = []
    for path in sorted((Path(__file__).parents[1] / "backend" / "assets" / "cmu" / "bvh20").glob("*.bvh.gz")):
        clip = read_bvh(path)
        joints, bone_map, _ = bvh_joints_metres(clip)
        rest = bvh_to_smpl_joints(replace(clip, motion=np.zeros((1, clip.motion.shape[1]))), bone_map)[0]
        rest[:, 1] -= rest[[7, 8, 10, 11], 1].min()
        on_floor = joints - np.array([0.0, joints[..., 1].min(), 0.0])
        read = encode_joints(on_smpl_body(on_floor, rest, clip.fps), clip.fps)
        ratios.append(path_length(read) / path_length(encode_joints(joints, clip.fps)))
    off = np.abs(np.array(ratios) - 1.0)
    print(f"\nread-back / CLI root path over {len(off)} CMU clips: mean {off.mean():.2%} off, worst {off.max():.2%}")
    assert len(off) == 44 and off.mean() <= 0.005 and off.max() <= 0.015, np.round(ratios, 4)
