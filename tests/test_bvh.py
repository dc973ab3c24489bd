"""Tests of the BVH reader, forward kinematics and the 22-joint writer against independent oracles."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
from reference import CLIP_131, CLIP_131_SCALED, CMU_CLIPS, cmu_clip, require, text_of
from scipy.spatial.transform import Rotation

from shared.motion.bvh import BvhError, bvh_end_site_positions, bvh_world_positions, read_bvh, write_bvh
from shared.motion.skeleton import BVH_JOINT_NAMES, PARENTS, TPOSE_OFFSETS

CMU_UNIT = 0.0564444  # metres per CMU length unit, (1/0.45) inch
# Root name → (metres per file unit, foot joints) of the two cgspeed skeletons.
SKELETONS = {"Hips": (CMU_UNIT, ("LeftToe", "RightToe")), "hip": (0.01, ("lFoot", "rFoot"))}
# HUMANML3D.md section 6: motion-line joint order of the written BVH, in SMPL indices.
WRITTEN_ORDER = [0, 1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12, 15, 13, 16, 18, 20, 14, 17, 19, 21]


@pytest.fixture(scope="module")
def clip_131():
    return read_bvh(require(CLIP_131))


def smpl_fk(local: np.ndarray, root: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Independent FK of the SMPL-22 tree: G_j = G_parent·L_j, p_j = p_parent + G_parent·offset_j."""
    n = len(local)
    glob = np.zeros((n, 22, 3, 3))
    pos = np.zeros((n, 22, 3))
    for j in range(22):
        p = PARENTS[j]
        if p < 0:
            glob[:, j], pos[:, j] = local[:, j], root
        else:
            glob[:, j] = glob[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + np.einsum("nab,b->na", glob[:, p], offsets[j])
    return pos


def random_motion(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    local = Rotation.random(n * 22, random_state=seed).as_matrix().reshape(n, 22, 3, 3)
    root = np.random.default_rng(seed).normal(size=(n, 3))
    return local, root


def two_joint_bvh(root_channels: str, root_values: list[float], child_offset: str, end_offset: str = "0 0 1") -> str:
    count = len(root_channels.split())
    return (
        f"HIERARCHY\nROOT a\n{{\n\tOFFSET 0 0 0\n\tCHANNELS {count} {root_channels}\n\tJOINT b\n\t{{\n"
        f"\t\tOFFSET {child_offset}\n\t\tCHANNELS 3 Zrotation Xrotation Yrotation\n"
        f"\t\tEnd Site\n\t\t{{\n\t\t\tOFFSET {end_offset}\n\t\t}}\n\t}}\n}}\n"
        f"MOTION\nFrames: 1\nFrame Time: 0.05\n{' '.join(map(str, root_values))} 0 0 0\n"
    )


# --- writer ------------------------------------------------------------------------------------------------------


def test_write_then_read_reproduces_fk_positions(tmp_path: Path) -> None:
    local, root = random_motion(40, seed=1)
    expected = smpl_fk(local, root, TPOSE_OFFSETS)
    write_bvh(tmp_path / "m.bvh", local, root)
    clip = read_bvh(tmp_path / "m.bvh")
    got = bvh_world_positions(clip)[:, [clip.index(name) for name in BVH_JOINT_NAMES]]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_written_hierarchy_follows_section_6(tmp_path: Path) -> None:
    local, root = random_motion(3, seed=2)
    write_bvh(tmp_path / "m.bvh", local, root, fps=20.0)
    clip = read_bvh(tmp_path / "m.bvh")
    assert clip.names == [BVH_JOINT_NAMES[j] for j in WRITTEN_ORDER]
    assert [clip.names[p] if p >= 0 else None for p in clip.parents] == [
        BVH_JOINT_NAMES[PARENTS[j]] if j else None for j in WRITTEN_ORDER
    ]
    assert clip.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
    assert all(c == ("Zrotation", "Yrotation", "Xrotation") for c in clip.channels[1:])
    np.testing.assert_allclose(clip.offsets, TPOSE_OFFSETS[WRITTEN_ORDER], atol=1e-6)
    assert clip.frame_time == pytest.approx(0.05)
    leaves = {"LeftToe": 10, "RightToe": 11, "Head": 15, "LeftHand": 20, "RightHand": 21}
    assert {clip.names[j] for j in clip.end_sites} == set(leaves)
    for name, smpl in leaves.items():
        end = clip.end_sites[clip.index(name)]
        bone = TPOSE_OFFSETS[smpl]
        assert 0.05 <= np.linalg.norm(end) <= 0.10
        assert end @ bone / (np.linalg.norm(end) * np.linalg.norm(bone)) > 0.999


def test_written_euler_angles_are_zyx_channels(tmp_path: Path) -> None:
    # Root rotation only: channels Z Y X must be scipy's intrinsic "ZYX" angles of the rotation.
    local = np.tile(np.eye(3), (1, 22, 1, 1))
    local[0, 0] = Rotation.from_euler("ZYX", [30.0, -20.0, 10.0], degrees=True).as_matrix()
    write_bvh(tmp_path / "m.bvh", local, np.zeros((1, 3)))
    np.testing.assert_allclose(read_bvh(tmp_path / "m.bvh").motion[0, 3:6], [30.0, -20.0, 10.0], atol=1e-5)


# --- forward kinematics ------------------------------------------------------------------------------------------


def test_zrotation_90_moves_x_offset_to_plus_y() -> None:
    text = two_joint_bvh("Xposition Yposition Zposition Zrotation Yrotation Xrotation", [0, 0, 0, 90, 0, 0], "1 0 0")
    np.testing.assert_allclose(bvh_world_positions(read_bvh(text))[0, 1], [0, 1, 0], atol=1e-12)


def test_yrotation_90_moves_x_offset_to_minus_z() -> None:
    text = two_joint_bvh("Yrotation", [90], "1 0 0")
    np.testing.assert_allclose(bvh_world_positions(read_bvh(text))[0, 1], [0, 0, -1], atol=1e-12)


@pytest.mark.parametrize("order", ["".join(p) for p in itertools.permutations("XYZ")])
def test_rotation_channels_compose_intrinsically_in_listed_order(order: str) -> None:
    angles = [37.0, -71.0, 123.0]
    channels = " ".join(f"{axis}rotation" for axis in order)
    text = two_joint_bvh(f"Xposition Yposition Zposition {channels}", [1, 2, 3, *angles], "0.3 -0.5 0.7", "0.2 0.1 0")
    clip = read_bvh(text)
    rotation = Rotation.from_euler(order, angles, degrees=True)  # uppercase = intrinsic
    child = np.array([1, 2, 3]) + rotation.apply([0.3, -0.5, 0.7])
    np.testing.assert_allclose(bvh_world_positions(clip)[0, 1], child, atol=1e-12)
    np.testing.assert_allclose(bvh_end_site_positions(clip)["b"][0], child + rotation.apply([0.2, 0.1, 0]), atol=1e-12)


def test_position_channels_replace_the_offset_on_root_and_children() -> None:
    # Blender's importer (io_anim_bvh): pose location = channel value − rest head, so a joint with position channels
    # sits at the channel values in its parent's frame; its OFFSET only places the rest pose. Hand-derived:
    # root at (10, 20, 30) (not + OFFSET 1 2 3); b at root + (0, 5, 0) (not + OFFSET 1 0 0); b's End Site at
    # b + Rz(90)·(0, 1, 0) = b + (−1, 0, 0).
    text = (
        "HIERARCHY\nROOT a\n{\n OFFSET 1 2 3\n CHANNELS 3 Xposition Yposition Zposition\n"
        " JOINT b\n {\n  OFFSET 1 0 0\n  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation\n"
        "  End Site\n  {\n   OFFSET 0 1 0\n  }\n }\n}\nMOTION\nFrames: 1\nFrame Time: 0.1\n10 20 30 0 5 0 90 0 0\n"
    )
    clip = read_bvh(text)
    np.testing.assert_allclose(bvh_world_positions(clip)[0], [[10, 20, 30], [10, 25, 30]], atol=1e-12)
    np.testing.assert_allclose(bvh_end_site_positions(clip)["b"][0], [9, 25, 30], atol=1e-12)


def test_position_channels_equal_to_the_offset_give_the_rotation_only_skeleton() -> None:
    # What many exporters write (every joint with position channels holding its OFFSET): the same joints as the
    # rotation-only file, not bones twice as long.
    rotation_only = two_joint_bvh(
        "Xposition Yposition Zposition Zrotation Yrotation Xrotation", [1, 2, 3, 30, 20, 10], "0.3 -0.5 0.7"
    )
    with_positions = rotation_only.replace(
        "CHANNELS 3 Zrotation Xrotation Yrotation",
        "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation",
    ).replace("1 2 3 30 20 10 0 0 0", "1 2 3 30 20 10 0.3 -0.5 0.7 0 0 0")
    np.testing.assert_allclose(
        bvh_world_positions(read_bvh(with_positions)), bvh_world_positions(read_bvh(rotation_only)), atol=1e-12
    )


def test_a_missing_position_channel_counts_as_zero() -> None:
    # Blender reads absent position channels of a joint that has some as 0 (not as the OFFSET's component).
    text = two_joint_bvh("Yposition", [7], "1 0 0")
    np.testing.assert_allclose(bvh_world_positions(read_bvh(text))[0], [[0, 7, 0], [1, 7, 0]], atol=1e-12)


def test_lenient_syntax_as_blender_reads_it() -> None:
    # Lower-case keywords and channels, a name with spaces (joined with '_'), a repeated name ('.001'), a name after
    # 'End Site', '{' on the joint's line, a second ROOT.
    text = (
        "hierarchy\nroot my hips\n{\n offset 0 0 0\n channels 3 xposition yposition zposition\n"
        " joint leg {\n  offset 0 -1 0\n  channels 1 zrotation\n  end site tip\n  {\n   offset 0 -1 0\n  }\n }\n"
        " joint leg\n {\n  offset 1 0 0\n  channels 0\n }\n}\n"
        "ROOT prop\n{\n OFFSET 5 0 0\n CHANNELS 0\n}\nmotion\nframes: 1\nframe time: 0.1\n1 2 3 90\n"
    )
    clip = read_bvh(text)
    assert clip.names == ["my_hips", "leg", "leg.001", "prop"]
    assert clip.parents == [-1, 0, 0, -1]
    assert clip.channels[0] == ("Xposition", "Yposition", "Zposition")
    np.testing.assert_allclose(bvh_world_positions(clip)[0], [[1, 2, 3], [1, 1, 3], [2, 2, 3], [5, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(bvh_end_site_positions(clip)["leg"][0], [2, 1, 3], atol=1e-12)  # Rz(90)·(0,-1,0)


def test_crlf_tabs_and_bare_decimal_frame_time_parse_like_lf() -> None:
    text = two_joint_bvh("Zrotation Xrotation Yrotation", [10, 20, 30], "1 2 3")
    mixed = text.replace("\n", "\r\n", 20).replace("Frame Time: 0.05", "Frame Time:\t.0083333")
    a, b = read_bvh(text), read_bvh(mixed)
    assert b.frame_time == pytest.approx(0.0083333)
    np.testing.assert_array_equal(bvh_world_positions(a), bvh_world_positions(b))


# --- errors ------------------------------------------------------------------------------------------------------

VALID = two_joint_bvh("Xposition Yposition Zposition Zrotation Yrotation Xrotation", [0, 0, 0, 0, 0, 0], "1 0 0")


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (VALID.replace("}\nMOTION", "MOTION"), r"end of HIERARCHY.*'}' closing joint a"),
        (VALID.replace("0 0 0 0 0 0 0 0 0", "0 0 0 0 0 0 0 0"), r"line 19: 8 values, expected 9"),
        (VALID.replace("0 0 0 0 0 0 0 0 0", "0 0 0 0 abc 0 0 0 0"), r"line 19: motion value 'abc'"),
        (VALID.replace("Frames: 1", "Frames: 2"), r"'Frames: 2' but 1 frame lines"),
        (VALID.replace("OFFSET 1 0 0", "OFFSET 1 x 0"), r"line 8: OFFSET of b must be a number, found 'x'"),
        (VALID.replace("CHANNELS 3", "CHANNELS 4"), r"unknown channel End of joint b"),
        (VALID.replace("MOTION", "MOTON"), r"no MOTION section"),
    ],
)
def test_malformed_bvh_raises_bvh_error(broken: str, message: str) -> None:
    with pytest.raises(BvhError, match=message):
        read_bvh(broken)


# --- real data: CMU 131_01 (120 fps, CMU units) ------------------------------------------------------------------


def raw_root_channels(path: Path) -> np.ndarray:
    """Root X, Y, Z columns read straight from the text (an oracle independent of the parser)."""
    lines = text_of(path).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Frame Time")) + 1
    return np.array([[float(v) for v in line.split()[:3]] for line in lines[start:] if line.strip()])


def test_131_01_header_and_counts(clip_131) -> None:
    assert clip_131.num_frames == 994
    assert clip_131.frame_time == pytest.approx(1 / 120, rel=1e-4)
    assert len(clip_131.names) == 31
    assert clip_131.motion.shape == (994, 96)
    assert len(clip_131.end_sites) == 7
    assert clip_131.channels[clip_131.index("LeftHip")] == ("Zrotation", "Yrotation", "Xrotation")
    assert clip_131.channels[clip_131.index("LeftShoulder")] == ("Zrotation", "Xrotation", "Yrotation")
    np.testing.assert_array_equal(bvh_world_positions(clip_131)[:, 0], raw_root_channels(CLIP_131))


def test_131_01_parses_fast() -> None:
    text = text_of(require(CLIP_131))
    best = min(_timed(read_bvh, text) for _ in range(3))
    assert best < 0.2, f"parsing 131_01.bvh took {best * 1000:.0f} ms"


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def test_131_01_fk_matches_metre_scaled_copy_with_rederived_angles(clip_131) -> None:
    # bvh11 rewrote the scaled copy: other Euler triples for the same rotations, 6 decimals, one extra frame.
    scaled = read_bvh(require(CLIP_131_SCALED))
    np.testing.assert_allclose(bvh_world_positions(clip_131) * CMU_UNIT, bvh_world_positions(scaled)[:994], atol=1e-4)


def test_131_01_walks_forward_along_facing_at_walking_speed(clip_131) -> None:
    joints = bvh_world_positions(clip_131) * CMU_UNIT
    root = joints[:, 0, [0, 2]]
    travel = root[-1] - root[0]
    assert np.linalg.norm(travel) == pytest.approx(2.6, rel=0.2)
    assert travel[1] / np.linalg.norm(travel) > 0.95  # along +Z (mocap README)
    # Facing: Y-up, left is +X when facing +Z, so forward = cross(left - right, up) (cross(+X, +Y) = +Z).
    across = joints[:, clip_131.index("LeftHip")] - joints[:, clip_131.index("RightHip")]
    forward = np.cross(across, [0.0, 1.0, 0.0])[:, [0, 2]]
    forward /= np.linalg.norm(forward, axis=1, keepdims=True)
    window = np.linalg.norm(root[120:] - root[:-120], axis=1)  # distance covered in each 1-second window
    fastest = int(np.argmax(window))
    assert window[fastest] == pytest.approx(1.3, rel=0.25)
    heading = root[fastest + 120] - root[fastest]
    assert forward[fastest : fastest + 120].mean(0) @ heading / np.linalg.norm(heading) > 0.9
    # Walking = from leaving the start spot (> 0.1 m) to reaching the end spot (< 0.1 m); mean path speed.
    start = int(np.argmax(np.linalg.norm(root - root[0], axis=1) > 0.1))
    stop = len(root) - int(np.argmax(np.linalg.norm(root - root[-1], axis=1)[::-1] > 0.1))
    path = np.linalg.norm(np.diff(root[start:stop:12], axis=0), axis=1).sum()
    assert path / ((stop - start) * clip_131.frame_time) == pytest.approx(0.7, rel=0.25)


@pytest.mark.parametrize("name", ["131_01.bvh", "60_01.bvh", "135_09.bvh"])
def test_a_foot_is_nearly_still_most_of_the_time(name: str) -> None:
    # Physical oracle for the channel-order convention: with a wrong order the planted foot slides (~0.4-0.8 m/s).
    clip = read_bvh(cmu_clip(name.removesuffix(".bvh")))
    unit, feet = SKELETONS[clip.names[0]]
    positions = bvh_world_positions(clip)[:, [clip.index(f) for f in feet]] * unit
    speed = np.linalg.norm(np.diff(positions, axis=0), axis=-1).min(axis=1) / clip.frame_time
    assert np.median(speed) < 0.15


# --- real data: every 20 fps CMU clip ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", CMU_CLIPS, ids=lambda p: p.name.removesuffix(".bvh.gz"))
def test_bvh20_clip_parses_with_plausible_hip_height(path: Path) -> None:
    clip = read_bvh(path)
    lines = text_of(path).splitlines()
    frame_lines = lines[next(i for i, line in enumerate(lines) if line.startswith("Frame Time")) + 1 :]
    assert clip.num_frames == len([line for line in frame_lines if line.strip()])
    assert clip.frame_time == pytest.approx(0.05)
    positions = bvh_world_positions(clip)
    assert np.isfinite(positions).all()
    unit, _ = SKELETONS[clip.names[0]]
    # Hip above the lowest joint: the Daz files' floor is not at Y = 0 (feet down to -0.33 m in 94_xx/135_xx).
    # Karate clips hold deep stances (knees near 90°): their median is 0.51-0.6 m, hence the low bound.
    hip_height = (positions[:, 0, 1] - positions[:, :, 1].min(axis=1)) * unit
    assert 0.45 <= np.median(hip_height) <= 1.3
