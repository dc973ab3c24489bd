"""Tests for shared.motion.ik (HUMANML3D.md §4.3 solver, §9 item 12) against independent oracles (scipy, hand math)."""

from __future__ import annotations

import numpy as np
import pytest
from reference import cmu_clip, humanml3d_reference
from scipy.spatial.transform import Rotation

from shared.motion.ik import (
    IkResult,
    forward_kinematics,
    global_to_local,
    kabsch,
    local_to_global,
    per_frame_rotation_change_degrees,
    solve_local_rotations,
)
from shared.motion.skeleton import PARENTS, TPOSE_OFFSETS, bone_lengths

X, Y, Z = np.eye(3)

# Axis-aligned T-pose (arms exactly along ±X, legs exactly along −Y) for hand-derived expectations; the triads
# are not coplanar with their joint so Kabsch is well posed.
CLEAN_OFFSETS = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.10, -0.08, 0.0],  # 1 left hip
        [-0.10, -0.08, 0.0],  # 2 right hip
        [0.0, 0.12, -0.03],  # 3 spine1
        [0.0, -0.40, 0.0],  # 4 left knee
        [0.0, -0.40, 0.0],  # 5 right knee
        [0.0, 0.14, 0.0],  # 6 spine2
        [0.0, -0.42, 0.0],  # 7 left ankle
        [0.0, -0.42, 0.0],  # 8 right ankle
        [0.0, 0.05, 0.0],  # 9 spine3
        [0.0, -0.06, 0.13],  # 10 left foot
        [0.0, -0.06, 0.13],  # 11 right foot
        [0.0, 0.21, -0.02],  # 12 neck
        [0.08, 0.11, -0.03],  # 13 left collar
        [-0.08, 0.11, -0.03],  # 14 right collar
        [0.0, 0.08, 0.06],  # 15 head
        [0.12, 0.0, 0.0],  # 16 left shoulder
        [-0.12, 0.0, 0.0],  # 17 right shoulder
        [0.26, 0.0, 0.0],  # 18 left elbow
        [-0.26, 0.0, 0.0],  # 19 right elbow
        [0.27, 0.0, 0.0],  # 20 left wrist
        [-0.27, 0.0, 0.0],  # 21 right wrist
    ]
)


def _rot(rotvec: np.ndarray | list[float]) -> np.ndarray:
    return Rotation.from_rotvec(np.asarray(rotvec, dtype=float)).as_matrix()


def _identity_locals(n: int) -> np.ndarray:
    return np.broadcast_to(np.eye(3), (n, 22, 3, 3)).copy()


def _naive_fk(local: np.ndarray, root: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Frame-by-frame, joint-by-joint FK written out independently of the module."""
    out = np.zeros((len(local), 22, 3))
    for t in range(len(local)):
        glob = [np.eye(3)] * 22
        for j in range(22):
            p = PARENTS[j]
            if p < 0:
                glob[j] = local[t, 0]
                out[t, 0] = root[t]
            else:
                glob[j] = glob[p] @ local[t, j]
                out[t, j] = out[t, p] + glob[p] @ offsets[j]
    return out


def _geodesic_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Independent oracle: angle of aᵀb via scipy."""
    flat_a, flat_b = a.reshape(-1, 3, 3), b.reshape(-1, 3, 3)
    rel = Rotation.from_matrix(flat_a).inv() * Rotation.from_matrix(flat_b)
    return np.degrees(rel.magnitude()).reshape(a.shape[:-2])


def _assert_rotations(local: np.ndarray, tol: float = 1e-6) -> None:
    eye_err = np.abs(np.swapaxes(local, -1, -2) @ local - np.eye(3)).max()
    det_err = np.abs(np.linalg.det(local) - 1.0).max()
    assert eye_err <= tol and det_err <= tol, (eye_err, det_err)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """HumanML3D clip 012314's joints (skips without MOTIONGPT3_HUMANML3D_REF)."""
    joints = np.load(humanml3d_reference() / "joints_012314.npy")
    assert joints.shape == (170, 22, 3)
    return joints.astype(np.float64)


@pytest.fixture(params=["012314", "cmu_131_01"])
def real_clip(request: pytest.FixtureRequest) -> np.ndarray:
    """A real clip's joints: HumanML3D 012314 (where provided) and the bundled CMU walk as captured (always)."""
    if request.param == "012314":
        return request.getfixturevalue("clip")
    from shared.motion.bone_map import bvh_to_smpl_joints
    from shared.motion.bvh import read_bvh

    return bvh_to_smpl_joints(read_bvh(cmu_clip("131_01"))).astype(np.float64)


# --------------------------------------------------------------------------------------------------------------
# Kinematics helpers


def test_fk_matches_naive_loop_and_global_local_round_trip() -> None:
    rng = np.random.default_rng(0)
    local = Rotation.random(5 * 22, random_state=1).as_matrix().reshape(5, 22, 3, 3)
    root = rng.normal(size=(5, 3))
    np.testing.assert_allclose(forward_kinematics(local, root, TPOSE_OFFSETS), _naive_fk(local, root, TPOSE_OFFSETS))
    glob = local_to_global(local)
    for j in range(1, 22):  # G_j = G_parent·L_j, independently
        np.testing.assert_allclose(glob[:, j], glob[:, PARENTS[j]] @ local[:, j], atol=1e-12)
    np.testing.assert_allclose(global_to_local(glob), local, atol=1e-12)


def test_kabsch_matches_scipy_align_vectors() -> None:
    rng = np.random.default_rng(2)
    src = rng.normal(size=(50, 3, 3))
    truth = Rotation.random(50, random_state=3).as_matrix()
    dst = np.einsum("nab,nkb->nka", truth, src) + 0.05 * rng.normal(size=src.shape)
    ours = kabsch(src, dst)
    for i in range(50):
        oracle, _ = Rotation.align_vectors(dst[i], src[i])  # dst ≈ R·src
        np.testing.assert_allclose(ours[i], oracle.as_matrix(), atol=1e-9)


def test_rotation_change_helper_flags_constructed_jump() -> None:
    local = _identity_locals(6)
    jump = _rot(np.radians(120.0) * np.array([1.0, 2.0, -1.0]) / np.sqrt(6.0))
    local[3:, 7] = jump  # joint 7 jumps by 120° between frames 2 and 3
    local[:, 16] = _rot([0.0, 0.0, 0.3])[None] @ np.stack([_rot([0.05 * t, 0.0, 0.0]) for t in range(6)])
    change = per_frame_rotation_change_degrees(local)
    assert change.shape == (5, 22)
    expected = _geodesic_deg(local[:-1], local[1:])
    np.testing.assert_allclose(change, expected, atol=1e-6)
    assert change[2, 7] == pytest.approx(120.0, abs=1e-6)
    assert np.argwhere(change > 90.0).tolist() == [[2, 7]]
    np.testing.assert_allclose(change[:, 16], np.degrees(0.05), atol=1e-6)


def test_rotation_change_helper_near_zero_and_180() -> None:
    local = _identity_locals(3)
    local[1, 0] = _rot([1e-7, 0.0, 0.0])
    local[2, 0] = _rot([np.pi - 1e-6, 0.0, 0.0]) @ local[1, 0]
    change = per_frame_rotation_change_degrees(local)
    assert change[0, 0] == pytest.approx(np.degrees(1e-7), rel=1e-3)
    assert change[1, 0] == pytest.approx(np.degrees(np.pi - 1e-6), abs=1e-6)


# --------------------------------------------------------------------------------------------------------------
# Real clip (§9 item 12)


def test_clip_fk_exact_with_fitted_triads(clip: np.ndarray) -> None:
    result = solve_local_rotations(clip, fit_triads=True)
    assert isinstance(result, IkResult)
    assert result.local_rotations.shape == (len(clip), 22, 3, 3)
    assert result.root_positions.shape == (len(clip), 3)
    assert result.rest_offsets.shape == (22, 3)
    fk = forward_kinematics(result.local_rotations, result.root_positions, result.rest_offsets)
    err = np.linalg.norm(fk - clip, axis=-1)
    assert err.max() <= 1e-5, err.max()
    np.testing.assert_allclose(result.root_positions, clip[:, 0])
    # Fitted offsets: clip bone lengths; triads are the clip's frame-0 triads up to one rotation.
    np.testing.assert_allclose(np.linalg.norm(result.rest_offsets, axis=1), bone_lengths(clip).mean(0), atol=1e-6)
    for j, kids in ((0, [1, 2, 3]), (9, [12, 13, 14])):
        data = clip[0, kids] - clip[0, j]
        assert np.allclose(data @ data.T, result.rest_offsets[kids] @ result.rest_offsets[kids].T, atol=1e-9)


def test_clip_fk_fixed_template_within_1cm(clip: np.ndarray) -> None:
    result = solve_local_rotations(clip)
    np.testing.assert_array_equal(result.rest_offsets, TPOSE_OFFSETS)
    fk = forward_kinematics(result.local_rotations, result.root_positions, TPOSE_OFFSETS)
    err = np.linalg.norm(fk - clip, axis=-1)
    # §4.3: mean 3.9 mm / max 5.7 mm. The clip is retargeted to the HumanML3D target skeleton and the template is
    # scaled to those lengths, so lengths agree to 0.1 mm and the error is the rigid-triad misfit, not lengths.
    assert np.abs(bone_lengths(clip)[:, 1:] - np.linalg.norm(TPOSE_OFFSETS[1:], axis=1)).max() < 1e-4
    assert err.max() <= 1e-2 and err.mean() <= 5e-3, (err.mean(), err.max())
    assert err.mean() == pytest.approx(3.9e-3, abs=0.2e-3)
    # Every bone outside the two triads is matched in direction exactly.
    single = [j for j in range(1, 22) if PARENTS[j] not in (0, 9)]
    fk_dir = fk[:, single] - fk[:, [PARENTS[j] for j in single]]
    data_dir = clip[:, single] - clip[:, [PARENTS[j] for j in single]]
    cos = (fk_dir * data_dir).sum(-1) / np.linalg.norm(fk_dir, axis=-1) / np.linalg.norm(data_dir, axis=-1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 1e-5


@pytest.mark.parametrize("fit_triads", [False, True])
@pytest.mark.parametrize("world_transport", [False, True])
def test_clip_rotations_orthonormal(real_clip: np.ndarray, fit_triads: bool, world_transport: bool) -> None:
    result = solve_local_rotations(real_clip, fit_triads=fit_triads, world_transport=world_transport)
    _assert_rotations(result.local_rotations)
    assert np.isfinite(result.local_rotations).all()


def test_clip_world_transport_reproduces_documented_twist_jump(clip: np.ndarray) -> None:
    """§4.3 (world-space transport, as written) reports one 143° upper-arm twist jump on this serve."""
    change = per_frame_rotation_change_degrees(solve_local_rotations(clip, world_transport=True).local_rotations)
    flagged = np.argwhere(change > 90.0)
    assert len(flagged) == 1 and flagged[0, 1] in (16, 17)
    assert change.max() == pytest.approx(143.0, abs=1.0)


# --------------------------------------------------------------------------------------------------------------
# Hand-derived cases


@pytest.mark.parametrize("world_transport", [False, True])
@pytest.mark.parametrize("offsets", [TPOSE_OFFSETS, CLEAN_OFFSETS], ids=["template", "clean"])
def test_tpose_gives_identity(offsets: np.ndarray, world_transport: bool) -> None:
    root = np.array([[0.0, 0.9, 0.0], [0.1, 0.95, 0.2], [0.3, 0.9, -0.1]])
    joints = forward_kinematics(_identity_locals(3), root, offsets)
    result = solve_local_rotations(joints, offsets, world_transport=world_transport)
    np.testing.assert_allclose(result.local_rotations, _identity_locals(3), atol=1e-9)
    np.testing.assert_allclose(result.root_positions, root)
    fitted = solve_local_rotations(joints, offsets, fit_triads=True)
    np.testing.assert_allclose(fitted.local_rotations, _identity_locals(3), atol=1e-9)
    np.testing.assert_allclose(fitted.rest_offsets, offsets, atol=1e-9)


@pytest.mark.parametrize("world_transport", [False, True])
def test_rigidly_rotated_tpose_single_frame(world_transport: bool) -> None:
    rotations = [Rotation.from_euler("y", 90, degrees=True).as_matrix(), Rotation.random(random_state=7).as_matrix()]
    for rot in rotations:
        local = _identity_locals(1)
        local[0, 0] = rot
        joints = forward_kinematics(local, np.array([[1.5, 0.9, -2.0]]), TPOSE_OFFSETS)
        result = solve_local_rotations(joints, world_transport=world_transport)
        np.testing.assert_allclose(result.local_rotations, local, atol=1e-9)
        np.testing.assert_allclose(result.root_positions, [[1.5, 0.9, -2.0]])


def test_turning_tpose_keeps_child_locals_identity() -> None:
    """Parent-frame transport: a rigid body turning/tumbling over time gives root = R(t), all else identity."""
    n = 60
    local = _identity_locals(n)
    local[:, 0] = (
        Rotation.from_euler("y", np.linspace(0, 300, n)[:, None], degrees=True)
        * Rotation.from_euler("x", 20 * np.sin(np.linspace(0, 6, n))[:, None], degrees=True)
    ).as_matrix()
    root = np.stack([np.linspace(0, 3, n), np.full(n, 0.9), np.zeros(n)], -1)
    joints = forward_kinematics(local, root, TPOSE_OFFSETS)
    result = solve_local_rotations(joints)
    np.testing.assert_allclose(result.local_rotations, local, atol=1e-9)


# (limb root, hinge joint, rest bone axis of the limb root, rest hinge axis) — knees flex back, elbows forward.
LIMBS = [(1, 4, -Y, X), (2, 5, -Y, X), (16, 18, X, -Y), (17, 19, -X, Y)]


@pytest.mark.parametrize(("root_j", "hinge_j", "bone_axis", "hinge_axis"), LIMBS)
@pytest.mark.parametrize("twist_deg", [0.0, 35.0, -120.0])
def test_limb_bent_90_about_hinge(
    root_j: int, hinge_j: int, bone_axis: np.ndarray, hinge_axis: np.ndarray, twist_deg: float
) -> None:
    """Hinge branch: limb root twisted about its bone, child bent 90° about the rest hinge → both recovered."""
    local = _identity_locals(2)
    local[:, root_j] = _rot(np.radians(twist_deg) * bone_axis)
    local[:, hinge_j] = _rot(np.radians(90.0) * hinge_axis)
    local[1, 0] = _rot([0.0, 0.7, 0.0])  # second frame: whole body turned
    joints = forward_kinematics(local, np.zeros((2, 3)), CLEAN_OFFSETS)
    # Anatomical sense: knees bend the shin backward (−Z), elbows swing the forearm forward (+Z).
    lower = joints[0, PARENTS.index(hinge_j)] - joints[0, hinge_j]  # the hinge joint's only child
    if twist_deg == 0.0:
        expected = -Z if root_j in (1, 2) else Z
        np.testing.assert_allclose(lower / np.linalg.norm(lower), expected, atol=1e-12)
    result = solve_local_rotations(joints, CLEAN_OFFSETS)
    np.testing.assert_allclose(result.local_rotations, local, atol=1e-9)


def test_elbow_bent_90_with_template_offsets() -> None:
    """With the §4.3 template the arm is not exactly planar, so only the hinge angle and the directions are exact."""
    local = _identity_locals(1)
    local[0, 18] = _rot(np.radians(90.0) * -Y)
    joints = forward_kinematics(local, np.zeros((1, 3)), TPOSE_OFFSETS)
    result = solve_local_rotations(joints)
    fk = forward_kinematics(result.local_rotations, result.root_positions, TPOSE_OFFSETS)
    np.testing.assert_allclose(fk, joints, atol=1e-9)
    elbow = Rotation.from_matrix(result.local_rotations[0, 18])
    assert np.degrees(elbow.magnitude()) == pytest.approx(90.0, abs=3.0)
    assert np.degrees(np.arccos(-elbow.as_rotvec() @ Y / elbow.magnitude())) < 5.0  # axis ≈ −Y
    assert _geodesic_deg(result.local_rotations[0, 16], np.eye(3)) < 5.0


def test_straight_arm_swing_uses_parallel_transport_without_twist() -> None:
    """Straight arm hanging and swinging forward/back in a great circle while the body walks and turns: the
    parallel-transport oracle is L(t) = R_x(θ(t) − θ(0))·Swing(x̂ → d(0))."""
    n = 120
    theta = np.radians(40.0) * np.sin(np.linspace(0.0, 4 * np.pi, n))
    local = _identity_locals(n)
    local[:, 0] = Rotation.from_euler("y", np.linspace(0, 180, n)[:, None], degrees=True).as_matrix()
    down = _rot(np.radians(-90.0) * Z)  # arm from +X to −Y
    local[:, 16] = np.stack([_rot([th, 0.0, 0.0]) for th in theta]) @ down
    root = np.stack([np.linspace(0, 2, n), 0.9 + 0.02 * np.sin(np.linspace(0, 20, n)), np.zeros(n)], -1)
    joints = forward_kinematics(local, root, CLEAN_OFFSETS)
    result = solve_local_rotations(joints, CLEAN_OFFSETS)
    d0 = local[0, 16] @ X
    swing0 = _rot(np.cross(X, d0) / np.linalg.norm(np.cross(X, d0)) * np.arccos(X @ d0))
    expected = np.stack([_rot([th - theta[0], 0.0, 0.0]) for th in theta]) @ swing0
    np.testing.assert_allclose(result.local_rotations[:, 16], expected, atol=1e-9)
    fk = forward_kinematics(result.local_rotations, result.root_positions, CLEAN_OFFSETS)
    np.testing.assert_allclose(fk, joints, atol=1e-9)
    change = per_frame_rotation_change_degrees(result.local_rotations)
    step = np.degrees(np.abs(np.diff(theta))).max()
    assert change[:, 16].max() <= step + 1e-6  # swing only: no twist jumps
    assert change[:, [j for j in range(1, 22) if j != 16]].max() < 1e-6


def test_bending_elbow_blends_into_hinge_frame_smoothly() -> None:
    """A straight arm with a twisted upper arm starts bending: the twist is unobservable while straight
    (transport: shoulder local = I), phases in over sin(bend) 0.17 → 0.34 and is exact once bent."""
    n = 80
    bend = np.radians(np.clip(np.linspace(-10.0, 70.0, n), 0.0, None))
    local = _identity_locals(n)
    local[:, 16] = _rot(np.radians(40.0) * X)
    local[:, 18] = np.stack([_rot(b * -Y) for b in bend])
    joints = forward_kinematics(local, np.zeros((n, 3)), CLEAN_OFFSETS)
    result = solve_local_rotations(joints, CLEAN_OFFSETS)
    straight = np.sin(bend) < 0.17
    hinge = np.sin(bend) > 0.34
    identity = np.broadcast_to(np.eye(3), (straight.sum(), 3, 3))
    np.testing.assert_allclose(result.local_rotations[straight, 16], identity, atol=1e-9)
    np.testing.assert_allclose(result.local_rotations[hinge][:, [16, 18]], local[hinge][:, [16, 18]], atol=1e-9)
    change = per_frame_rotation_change_degrees(result.local_rotations)
    assert change.max() < 10.0
    fk = forward_kinematics(result.local_rotations, result.root_positions, CLEAN_OFFSETS)
    np.testing.assert_allclose(fk, joints, atol=1e-9)


def test_world_transport_drifts_under_turning_but_parent_transport_does_not() -> None:
    """Why parent-frame transport is the default: §4.3's world-space transport lets a straight leg of a turning
    body lag the pelvis (twist accumulates about the leg), the parent-frame version does not."""
    n = 90
    local = _identity_locals(n)
    local[:, 0] = Rotation.from_euler("y", np.linspace(0, 180, n)[:, None], degrees=True).as_matrix()
    joints = forward_kinematics(local, np.zeros((n, 3)), CLEAN_OFFSETS)
    world = solve_local_rotations(joints, CLEAN_OFFSETS, world_transport=True).local_rotations
    parent = solve_local_rotations(joints, CLEAN_OFFSETS).local_rotations
    np.testing.assert_allclose(parent, local, atol=1e-9)
    assert _geodesic_deg(world[-1, 1], np.eye(3)) > 90.0  # left hip twisted ~180° against the pelvis
