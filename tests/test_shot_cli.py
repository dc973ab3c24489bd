"""`motiongpt3 shot`: a shot file in, the motion files and a report out; bad files exit 2 naming the field."""

from __future__ import annotations

import json

import numpy as np

from backend.cli import main
from shared.motion.humanml3d import features_to_joints

SHOT = {
    "segments": [
        {"text": "a person walks forward", "seconds": 5},
        {"text": "a person waves the right hand", "seconds": 2},
    ],
    "waypoints": [{"time": 4.5, "position": [0.8, 2.5]}],
    "seed": 4,
}


def test_a_shot_file_becomes_motion_files_and_a_report(tmp_path, capsys):
    path = tmp_path / "shot.json"
    path.write_text(json.dumps(SHOT))
    assert main(["shot", str(path), "-o", str(tmp_path / "out" / "shot"), "--threads", "1", "--candidates", "2"]) == 0
    for k in (1, 2):
        features = np.load(tmp_path / "out" / f"shot_{k}.npy")
        assert features.shape == (140, 263)
        joints = features_to_joints(features)
        assert np.linalg.norm(joints[90, 0, [0, 2]] - [0.8, 2.5]) < 0.10
        assert (tmp_path / "out" / f"shot_{k}.bvh").is_file()
    report = json.loads((tmp_path / "out" / "shot_report.json").read_text())
    assert report["seed"] == 4 and len(report["candidates"]) == 2
    assert all(c["waypoints_m"][0] < 0.10 for c in report["candidates"])
    assert "waypoints_m" in capsys.readouterr().out


def test_a_bad_shot_file_exits_2_naming_the_field(tmp_path, capsys):
    path = tmp_path / "shot.json"
    path.write_text(json.dumps({**SHOT, "waypoints": [{"time": 4.5, "position": [0.8, 60]}]}))
    assert main(["shot", str(path), "-o", str(tmp_path / "x")]) == 2
    assert "waypoints[0].position[1]: 60 is outside -50..50" in capsys.readouterr().err
    path.write_text("[1, 2]")
    assert main(["shot", str(path), "-o", str(tmp_path / "x")]) == 2
    assert "holds one JSON object" in capsys.readouterr().err
    assert main(["shot", str(tmp_path / "missing.json"), "-o", str(tmp_path / "x")]) == 2
