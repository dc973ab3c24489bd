"""`motiongpt3 generate | predict | inbetween | caption` end to end with a tiny model checkpoint."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reference import cmu_clip, gunzip_to

from backend.cli import main
from backend.cli.tasks import parse_frame_spec
from shared.motion.bone_map import bvh_to_smpl_joints
from shared.motion.bvh import read_bvh

REPO = Path(__file__).resolve().parents[1]


def test_generate_writes_features_joints_and_bvh(tiny_checkpoint, tmp_path):
    stem = tmp_path / "out" / "wave"
    args = ["generate", "a person waves", "--frames", "33", "--steps", "5", "--candidates", "2", "--fps", "30"]
    assert main([*args, "--checkpoint", str(tiny_checkpoint), "-o", str(stem)]) == 0
    for k in (1, 2):
        features = np.load(tmp_path / "out" / f"wave_{k}.npy")
        joints = np.load(tmp_path / "out" / f"wave_{k}_joints.npy")
        assert features.shape == (33, 263)
        assert joints.shape == (49, 22, 3)  # 32 intervals at 20 fps = 1.6 s -> 49 frames at 30 fps
        clip = read_bvh(tmp_path / "out" / f"wave_{k}.bvh")
        assert clip.num_frames == 49 and clip.fps == pytest.approx(30.0)
        assert bvh_to_smpl_joints(clip, "smpl22").shape == (49, 22, 3)
        assert (tmp_path / "out" / f"wave_{k}_preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_and_inbetween_from_a_bvh(tiny_checkpoint, tmp_path):
    walk = str(cmu_clip("131_01"))
    common = ["--steps", "4", "--checkpoint", str(tiny_checkpoint)]
    assert main(["predict", walk, "--frames", "40", *common, "-o", str(tmp_path / "next")]) == 0
    assert np.load(tmp_path / "next.npy").shape == (165 + 40, 263)
    assert main(["inbetween", walk, "--known", "0:30,80,140:", *common, "-o", str(tmp_path / "mid")]) == 0
    filled = np.load(tmp_path / "mid.npy")
    assert filled.shape == (165, 263)
    np.testing.assert_allclose(filled[:30], np.load(tmp_path / "next.npy")[:30], atol=1e-5)  # known frames kept


def test_inbetween_with_a_text(tiny_checkpoint, cmu_walk, tmp_path):
    clip = tmp_path / "clip.npy"
    np.save(clip, cmu_walk[0][:40])
    common = [str(clip), "--known", "0:10,30:", "--steps", "4", "--checkpoint", str(tiny_checkpoint)]
    assert main(["inbetween", *common, "--text", "a person jumps up", "-o", str(tmp_path / "jump")]) == 0
    assert main(["inbetween", *common, "-o", str(tmp_path / "plain")]) == 0
    jump, plain = np.load(tmp_path / "jump.npy"), np.load(tmp_path / "plain.npy")
    assert jump.shape == plain.shape == (40, 263)
    np.testing.assert_allclose(jump[:10], np.load(clip)[:10], atol=1e-5)  # known frames kept
    assert not np.array_equal(jump[10:30], plain[10:30])  # the text was used


def test_caption_a_folder_reports_bad_files_and_finishes(tiny_checkpoint, cmu_walk, tmp_path):
    folder = tmp_path / "library"
    folder.mkdir()
    (folder / "131_01.bvh.gz").write_bytes(cmu_clip("131_01").read_bytes())  # read compressed
    gunzip_to(cmu_clip("135_04"), folder)  # and plain
    np.save(folder / "feats.npy", cmu_walk[0][60:120])
    (folder / "broken.bvh").write_text("HIERARCHY\nROOT x\n{\n")
    out = tmp_path / "captions.csv"
    assert main(["caption", str(folder), "--checkpoint", str(tiny_checkpoint), "-o", str(out)]) == 1  # one failed
    rows = list(csv.DictReader(out.open()))
    names = [Path(r["file"]).name for r in rows]
    assert names == ["131_01.bvh.gz", "135_04.bvh", "135_04.bvh", "broken.bvh", "feats.npy"]  # 135_04: 11 s
    assert rows[3]["error"] and not rows[3]["caption"]
    assert all(r["caption"] and not r["error"] for i, r in enumerate(rows) if i != 3)
    assert (rows[0]["start_s"], rows[0]["end_s"]) == ("0.00", "8.25")  # 165 feature rows at 20 fps
    json_out = tmp_path / "captions.json"
    main(["caption", str(folder / "feats.npy"), "--checkpoint", str(tiny_checkpoint), "-o", str(json_out)])
    assert json.loads(json_out.read_text())[0]["caption"] == rows[4]["caption"]  # deterministic


def test_frame_spec():
    mask = parse_frame_spec("0:3, 5, -2:", 10)
    assert np.flatnonzero(mask).tolist() == [0, 1, 2, 5, 8, 9]


def test_missing_model_is_one_clear_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "backend.cli",
            "generate",
            "walk",
            "-o",
            str(tmp_path / "x"),
            "--checkpoint",
            str(tmp_path / "nope.safetensors"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "nope.safetensors" in result.stderr.strip().splitlines()[-1]
