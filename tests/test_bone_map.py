"""Tests of the bundled bone maps and BVH → SMPL-22 joint positions on real CMU clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from reference import CLIP_131, cmu_clip, require, text_of
from scipy.spatial.transform import Rotation

from shared.motion.bone_map import (
    BONE_MAP_DIR,
    BoneMapError,
    bvh_to_smpl_joints,
    detect_bone_map,
    load_bone_map,
)
from shared.motion.bvh import read_bvh, write_bvh
from shared.motion.skeleton import JOINT_NAMES, PARENTS, TPOSE_OFFSETS

J = {name: i for i, name in enumerate(JOINT_NAMES)}


@pytest.fixture(scope="module")
def clip_131():
    return read_bvh(require(CLIP_131))


@pytest.fixture(scope="module")
def clip_daz():
    return read_bvh(cmu_clip("60_01"))


def bone(joints: np.ndarray, a: str, b: str) -> np.ndarray:
    return np.linalg.norm(joints[:, J[a]] - joints[:, J[b]], axis=-1)


def test_bundled_files_map_all_22_joints_with_their_units() -> None:
    units = {"cmu": 0.0564444, "cgspeed_daz": 0.01, "smpl22": 1.0}
    for name, unit in units.items():
        data = json.loads((BONE_MAP_DIR / f"{name}.json").read_text())
        assert set(data["joints"]) == set(JOINT_NAMES)
        assert data["unit_to_metres"] == unit
        assert load_bone_map(name).unit_to_metres == unit


def test_detects_cmu_and_daz_skeletons(clip_131, clip_daz) -> None:
    assert detect_bone_map(clip_131) == "cmu"
    assert detect_bone_map(clip_daz) == "cgspeed_daz"


@pytest.mark.parametrize("fixture", ["clip_131", "clip_daz"])
def test_mapped_joints_have_human_proportions(fixture: str, request: pytest.FixtureRequest) -> None:
    joints = bvh_to_smpl_joints(request.getfixturevalue(fixture))
    assert joints.dtype == np.float64 and joints.shape[1:] == (22, 3)
    for side in ("left", "right"):
        assert 0.35 <= bone(joints, f"{side}_hip", f"{side}_knee").mean() <= 0.5  # thigh
        assert 0.35 <= bone(joints, f"{side}_knee", f"{side}_ankle").mean() <= 0.5  # shin
        assert 0.08 <= bone(joints, f"{side}_ankle", f"{side}_foot").mean() <= 0.2  # ankle → ball of the foot
        assert 0.2 <= bone(joints, f"{side}_shoulder", f"{side}_elbow").mean() <= 0.35  # upper arm
    assert 0.12 <= bone(joints, "left_hip", "right_hip").mean() <= 0.3  # CMU femur heads: 0.137 m apart
    # Frame 0 is a standing frame in both clips: pelvis above the lowest foot joint, head > neck > pelvis.
    standing = joints[0]
    feet = [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]]
    assert 0.8 <= standing[J["pelvis"], 1] - standing[feet, 1].min() <= 1.1
    assert standing[J["head"], 1] > standing[J["neck"], 1] > standing[J["spine3"], 1] > standing[J["pelvis"], 1]


def test_daz_toe_is_the_foot_end_site_in_front_of_the_ankle(clip_daz) -> None:
    joints = bvh_to_smpl_joints(clip_daz, "cgspeed_daz")
    across = joints[:, J["left_hip"]] - joints[:, J["right_hip"]]
    forward = np.cross(across, [0.0, 1.0, 0.0])  # Y up, left = +X when facing +Z
    toe = joints[:, J["left_foot"]] - joints[:, J["left_ankle"]]
    assert np.median(np.sum(forward * toe, axis=1)) > 0


def test_smpl22_map_reads_back_the_written_skeleton(tmp_path: Path) -> None:
    n = 5
    local = Rotation.random(n * 22, random_state=3).as_matrix().reshape(n, 22, 3, 3)
    root = np.random.default_rng(3).normal(size=(n, 3))
    write_bvh(tmp_path / "m.bvh", local, root)
    clip = read_bvh(tmp_path / "m.bvh")
    assert detect_bone_map(clip) == "smpl22"
    expected = np.zeros((n, 22, 3))
    rotations = np.zeros((n, 22, 3, 3))
    for j, p in enumerate(PARENTS):  # independent FK: G_j = G_parent·L_j, p_j = p_parent + G_parent·offset_j
        rotations[:, j] = local[:, j] if p < 0 else rotations[:, p] @ local[:, j]
        expected[:, j] = root if p < 0 else expected[:, p] + rotations[:, p] @ TPOSE_OFFSETS[j]
    np.testing.assert_allclose(bvh_to_smpl_joints(clip), expected, atol=1e-5)


def test_clip_missing_a_bone_raises_naming_it() -> None:
    text = text_of(require(CLIP_131)).replace("JOINT LeftKnee", "JOINT LeftKneeRenamed")
    clip = read_bvh(text)
    with pytest.raises(BoneMapError, match=r"lacks bones of map cmu: LeftKnee$"):
        bvh_to_smpl_joints(clip, "cmu")
    with pytest.raises(BoneMapError, match="no bundled bone map"):
        detect_bone_map(clip)


def test_clip_missing_the_toe_end_site_raises() -> None:
    clip = read_bvh(cmu_clip("60_01"))
    del clip.end_sites[clip.index("lFoot")]
    with pytest.raises(BoneMapError, match="End Site of lFoot"):
        bvh_to_smpl_joints(clip, "cgspeed_daz")


def test_map_file_lacking_an_smpl_joint_raises_naming_it(tmp_path: Path) -> None:
    data = json.loads((BONE_MAP_DIR / "cmu.json").read_text())
    del data["joints"]["left_wrist"]
    (tmp_path / "partial.json").write_text(json.dumps(data))
    with pytest.raises(BoneMapError, match="lacks SMPL joints: left_wrist"):
        load_bone_map(tmp_path / "partial.json")


def test_map_loads_from_a_path_and_unknown_names_raise() -> None:
    assert load_bone_map(BONE_MAP_DIR / "cgspeed_daz.json") == load_bone_map("cgspeed_daz")
    with pytest.raises(BoneMapError, match="no bundled bone map 'no_such_rig'"):
        load_bone_map("no_such_rig")
