"""Where the tests' data lives: fixtures in the repository, and the HumanML3D reference clip found through
MOTIONGPT3_HUMANML3D_REF (its AMASS-derived motion may not be redistributed, so it is never in the repository)."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from backend.train.cmu import BUNDLED_CMU

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
CMU_FOLDER = BUNDLED_CMU  # 44 CMU clips at 20 fps (bvh20/*.bvh.gz) + descriptions.tsv, shared with train-demo
CMU_CLIPS = sorted((CMU_FOLDER / "bvh20").glob("*.bvh.gz"))
CLIP_131 = TEST_DATA / "mocap" / "131_01.bvh.gz"  # CMU 131_01 at 120 fps, CMU units
CLIP_131_SCALED = TEST_DATA / "mocap" / "131_01_scaled.bvh.gz"  # the same in metres, rewritten by bvh11
STATE_DICT_TSV = TEST_DATA / "motiongpt3_state_dict.tsv"

HUMANML3D_REF_VARIABLE = "MOTIONGPT3_HUMANML3D_REF"
HUMANML3D_REF_FILES = ("feats_012314.npy", "joints_012314.npy")


def cmu_clip(trial: str) -> Path:
    """The bundled 20 fps CMU clip `trial` ("131_01"), gzip-compressed."""
    return require(CMU_FOLDER / "bvh20" / f"{trial}.bvh.gz")


def cmu_walk_clip() -> tuple[np.ndarray, np.ndarray]:
    """(features (165, 263), joints (166, 22, 3)) of the bundled CMU clip 131_01 ("start, walk, stop") at 20 fps, on
    the SMPL-22 skeleton: real motion from the repository for tests that need a real clip but no released HumanML3D
    numbers. Like HumanML3D's own clips (SMPL fits of mocap), the performer's joints are carried onto the SMPL body
    (our IK onto the T-pose template, then FK), so the pelvis and chest triads are rigid as the retargeting assumes."""
    from shared.motion.bone_map import bvh_to_smpl_joints
    from shared.motion.bvh import read_bvh
    from shared.motion.humanml3d import joints_to_features

    clip = read_bvh(cmu_clip("131_01"))
    joints = on_smpl_body(bvh_to_smpl_joints(clip).astype(np.float64))
    return joints_to_features(joints).astype(np.float32), joints


FORWARD = {"direction": "forward"}
WALK_JUMP_PLAN = [("walk", FORWARD), ("jump", FORWARD), ("walk", FORWARD)]


def walk_jump_clip(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(features (190, 263), joints (191, 22, 3)) at 20 fps: the synthetic generator's walk, two forward jumps
    (0.37 m high) and walk again (`backend.train.synthetic.make_clip`, numpy only), carried onto the SMPL body like
    `cmu_walk_clip`: a motion of 9.5 s with planted steps, flight and landings for the retargeting figures."""
    from backend.train.synthetic import make_clip
    from shared.motion.humanml3d import joints_to_features

    joints = on_smpl_body(make_clip(seed, WALK_JUMP_PLAN).joints.astype(np.float64))
    return joints_to_features(joints).astype(np.float32), joints


def on_smpl_body(performer: np.ndarray) -> np.ndarray:
    """(T, 22, 3) joints of any body → the same motion on the SMPL T-pose template (IK, then FK), float32; the root
    trajectory scaled by the ratio of the leg lengths (hip → knee → ankle)."""
    from shared.motion.ik import forward_kinematics, solve_local_rotations
    from shared.motion.skeleton import TPOSE_OFFSETS

    solved = solve_local_rotations(performer)
    leg = np.linalg.norm(performer[:, 4] - performer[:, 1], axis=-1).mean() + np.linalg.norm(
        performer[:, 7] - performer[:, 4], axis=-1
    ).mean()
    smpl_leg = np.linalg.norm(TPOSE_OFFSETS[4]) + np.linalg.norm(TPOSE_OFFSETS[7])
    root = solved.root_positions * (smpl_leg / leg)  # the performer's travel at SMPL's leg length
    return forward_kinematics(solved.local_rotations, root, TPOSE_OFFSETS).astype(np.float32)


def require(path: Path) -> Path:
    """`path`, or a test failure (never a skip: the file is part of the repository)."""
    if not path.exists():
        pytest.fail(f"test data {path} not found (it belongs to the repository)")
    return path


def humanml3d_reference() -> Path:
    """The folder holding HumanML3D clip 012314 (named by MOTIONGPT3_HUMANML3D_REF), or skip the test saying why."""
    folder = os.environ.get(HUMANML3D_REF_VARIABLE, "")
    if not folder:
        pytest.skip(f"HumanML3D reference clip 012314 not available: set {HUMANML3D_REF_VARIABLE} (AMASS-derived)")
    path = Path(folder)
    missing = [name for name in HUMANML3D_REF_FILES if not (path / name).is_file()]
    if missing:
        pytest.fail(f"{HUMANML3D_REF_VARIABLE}={folder} lacks {', '.join(missing)}")
    return path


def text_of(path: Path) -> str:
    """The text of a plain or gzip-compressed (.gz) file."""
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")


def gunzip_to(source: Path, folder: Path) -> Path:
    """An uncompressed copy of `source` (.bvh.gz) in `folder` (for readers that take plain files, e.g. Blender's)."""
    target = folder / source.name.removesuffix(".gz")
    with gzip.open(source, "rb") as compressed, target.open("wb") as plain:
        shutil.copyfileobj(compressed, plain)
    return target
