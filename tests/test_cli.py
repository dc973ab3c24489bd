"""The `motiongpt3` command line on real mocap: encode, decode, statistics and clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reference import CLIP_131, CMU_CLIPS, cmu_clip

from backend.cli import main
from shared.motion.bone_map import bvh_to_smpl_joints
from shared.motion.bvh import read_bvh
from shared.motion.humanml3d import LAYOUT
from shared.motion.normalization import zscore_summary
from shared.motion.skeleton import bone_lengths

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def walk_features(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    out = tmp_path_factory.mktemp("encode") / "131_01.npy"
    assert main(["encode", str(CLIP_131), "-o", str(out)]) == 0
    return np.load(out)


def test_encoding_the_cmu_walk_has_humanml3d_statistics(walk_features):
    # 994 frames at 120 fps = 8.275 s -> 166 frames at 20 fps -> 165 rows.
    assert walk_features.shape == (165, 263) and walk_features.dtype == np.float32
    blocks = {b.name: b for b in zscore_summary(walk_features)}
    for name in ("ric", "rot6d", "local_velocity"):
        assert abs(blocks[name].z_mean) < 1 and 0.4 <= blocks[name].z_std <= 1.9, blocks[name]
    assert abs(blocks["root_height"].z_mean) < 1
    assert set(np.unique(walk_features[:, LAYOUT.foot_contacts])) <= {0.0, 1.0}
    assert walk_features[:, 2].sum() > 0  # walks forward, not mirrored backwards
    # Root travel along the way the body faces: ~2.6 m over the clip (forward velocity is heading-local).
    assert walk_features[:, 2].sum() == pytest.approx(2.6, rel=0.2)


def test_120_fps_original_and_its_20_fps_subsample_encode_alike(walk_features, tmp_path):
    out = tmp_path / "bvh20.npy"
    assert main(["encode", str(cmu_clip("131_01")), "-o", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), walk_features, atol=1e-4)


def test_every_cmu_clip_encodes_with_plausible_statistics(tmp_path):
    clips = CMU_CLIPS
    assert len(clips) == 44
    for clip in clips:
        out = tmp_path / f"{clip.stem}.npy"
        assert main(["encode", str(clip), "-o", str(out)]) == 0, clip.name
        features = np.load(out)
        assert np.all(np.isfinite(features)), clip.name
        blocks = {b.name: b for b in zscore_summary(features)}
        assert abs(blocks["root_height"].z_mean) < 3, (clip.name, blocks["root_height"])
        assert blocks["ric"].z_std < 3, (clip.name, blocks["ric"])  # > 5 means an axis or unit bug
        assert abs(blocks["ric"].z_mean) < 1.5, (clip.name, blocks["ric"])


def test_decode_writes_a_bvh_that_reads_back_onto_the_joints(walk_features, tmp_path):
    features_path, bvh_path, joints_path = tmp_path / "f.npy", tmp_path / "walk.bvh", tmp_path / "walk.npy"
    np.save(features_path, walk_features)
    assert main(["decode", str(features_path), "-o", str(joints_path)]) == 0
    assert main(["decode", str(features_path), "-o", str(bvh_path)]) == 0
    joints = np.load(joints_path)
    assert joints.shape == (165, 22, 3)
    clip = read_bvh(bvh_path)
    assert clip.num_frames == 165 and clip.frame_time == pytest.approx(0.05)
    from_bvh = bvh_to_smpl_joints(clip, "smpl22")
    # The written rest skeleton takes the motion's bone lengths and frame-0 pelvis/chest shape. CMU's
    # lower back bends between the hips and the chest, so those triads are not rigid over the clip and a rigid
    # rig can only follow them to a few centimetres; the root and the leg bone lengths are exact.
    np.testing.assert_allclose(from_bvh[:, 0], joints[:, 0], atol=1e-5)
    error = np.linalg.norm(from_bvh - joints, axis=-1)
    assert error.mean() < 0.02 and error.max() < 0.05, (error.mean(), error.max())
    np.testing.assert_allclose(
        bone_lengths(from_bvh)[:, [4, 5, 7, 8]], bone_lengths(joints)[:, [4, 5, 7, 8]], atol=1e-5
    )


def test_decode_resamples_to_the_scene_rate(walk_features, tmp_path):
    features_path, out = tmp_path / "f.npy", tmp_path / "walk30.npy"
    np.save(features_path, walk_features)
    assert main(["decode", str(features_path), "-o", str(out), "--fps", "29.97"]) == 0
    assert len(np.load(out)) == 246  # 164 intervals / 20 fps = 8.2 s -> 8.2 x 29.97 = 245.75 -> 246 frames


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], cwd=REPO, capture_output=True, text=True)


def _assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_file_is_one_clear_line(tmp_path):
    _assert_one_line_error(_run_cli("encode", str(tmp_path / "nope.bvh"), "-o", str(tmp_path / "x.npy")), "nope.bvh")


def test_wrong_shape_and_nan_features_are_one_clear_line(tmp_path):
    np.save(tmp_path / "short.npy", np.zeros((10, 200), np.float32))
    _assert_one_line_error(_run_cli("decode", str(tmp_path / "short.npy"), "-o", str(tmp_path / "o.bvh")), "263")
    bad = np.zeros((10, 263), np.float32)
    bad[3, 100] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    _assert_one_line_error(_run_cli("decode", str(tmp_path / "nan.npy"), "-o", str(tmp_path / "o.bvh")), "NaN")


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _assert_one_line_error(_run_cli("decode", str(tmp_path / "obj.npy"), "-o", str(tmp_path / "o.bvh")), "obj.npy")


def test_unmappable_bvh_is_one_clear_line(tmp_path):
    bvh = tmp_path / "robot.bvh"
    bvh.write_text(
        "HIERARCHY\nROOT Base\n{\n OFFSET 0 0 0\n"
        " CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation\n"
        " JOINT Arm\n {\n  OFFSET 0 1 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n"
        "  End Site\n  {\n   OFFSET 0 1 0\n  }\n }\n}\nMOTION\nFrames: 2\nFrame Time: 0.05\n"
        "0 0 0 0 0 0 0 0 0\n0 0 0 0 0 0 0 0 0\n"
    )
    _assert_one_line_error(_run_cli("encode", str(bvh), "-o", str(tmp_path / "x.npy")), "bone map")
    result = _run_cli("encode", str(bvh), "-o", str(tmp_path / "x.npy"), "--map", "cmu")
    _assert_one_line_error(result, "Hips")


def test_bad_output_extension_and_fps_are_rejected(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((5, 263), np.float32))
    _assert_one_line_error(_run_cli("decode", str(tmp_path / "f.npy"), "-o", str(tmp_path / "o.fbx")), ".bvh or .npy")
    result = _run_cli("decode", str(tmp_path / "f.npy"), "-o", str(tmp_path / "o.bvh"), "--fps", "0")
    assert result.returncode == 2 and "--fps" in result.stderr and "Traceback" not in result.stderr
