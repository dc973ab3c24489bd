"""Mapping help for BVH skeletons: the no-preset error names the closest preset and what it lacks, a skeleton that is
not human-sized in the stated unit is refused naming the likely unit, and `motiongpt3 bonemap` drafts maps that agree
with the hand-made bundled maps and read real third-party files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from reference import CLIP_131, CLIP_131_SCALED, TEST_DATA, cmu_clip, require, text_of

from backend.cli import main
from shared.motion.bone_map import BONE_MAP_DIR, BoneMapError, bvh_to_smpl_joints, load_bone_map
from shared.motion.bvh import read_bvh
from shared.motion.bvh_mapping import bvh_joints_metres, draft_bone_map, fit_bone_map, leg_length, parse_unit
from shared.motion.skeleton import JOINT_NAMES

MOCAP = TEST_DATA / "mocap"
LIMBS = [f"{s}_{p}" for s in ("left", "right") for p in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")]


def scaled_bvh(text: str, factor: float) -> str:
    """The same motion with every length (OFFSETs, position channels) multiplied by `factor`."""
    clip = read_bvh(text)
    lines, out = text.splitlines(), []
    for line in lines:
        words = line.split()
        if words[:1] in (["OFFSET"],):
            line = "OFFSET " + " ".join(f"{float(v) * factor:.6f}" for v in words[1:])
        out.append(line)
    at = next(i for i, line in enumerate(out) if line.startswith("Frame Time"))
    is_position = np.array([c.endswith("position") for cs in clip.channels for c in cs])
    motion = clip.motion * np.where(is_position, factor, 1.0)
    return "\n".join(out[: at + 1] + [" ".join(f"{v:.6f}" for v in row) for row in motion]) + "\n"


# --- no preset fits ---------------------------------------------------------------------------------------------


def test_no_preset_error_names_the_closest_preset_and_what_it_lacks():
    text = text_of(require(CLIP_131)).replace("JOINT LeftKnee", "JOINT Knee_L").replace("JOINT LeftWrist", "JOINT W")
    with pytest.raises(BoneMapError) as error:
        fit_bone_map(read_bvh(text))
    message = str(error.value)
    assert "the closest, 'cmu', maps 20 of 22 joints and lacks left_knee (LeftKnee), left_wrist (LeftWrist)" in message
    assert "motiongpt3 bonemap" in message


def test_a_skeleton_no_preset_matches_at_all_names_no_preset():
    text = (
        "HIERARCHY\nROOT base\n{\n OFFSET 0 0 0\n CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation "
        "Yrotation\n JOINT arm\n {\n  OFFSET 0 1 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n  End Site\n  {\n"
        "   OFFSET 0 1 0\n  }\n }\n}\nMOTION\nFrames: 1\nFrame Time: 0.05\n0 0 0 0 0 0 0 0 0\n"
    )
    with pytest.raises(BoneMapError, match=r"no bundled bone map matches any joint of this BVH skeleton \(root 'base'"):
        fit_bone_map(read_bvh(text))


def test_a_prefixed_mixamo_skeleton_is_detected_with_its_names():
    text = text_of(MOCAP / "geno_stance.bvh.gz")
    for name in read_bvh(text).names:
        text = text.replace(f" {name}\r\n", f" mixamorig:{name}\r\n")
    bone_map = fit_bone_map(read_bvh(text))
    assert bone_map.name == "mixamo" and bone_map.sources[0].bones == ("mixamorig:Hips",)


# --- units ------------------------------------------------------------------------------------------------------


def test_a_metre_file_under_a_cmu_unit_map_is_refused_naming_metres():
    clip = read_bvh(require(CLIP_131_SCALED))  # the same motion as 131_01, rewritten in metres
    with pytest.raises(BoneMapError, match=r"0\.0452 m long in CMU units.*likely in metres, pass --unit m\b"):
        bvh_joints_metres(clip, "cmu")
    in_metres, _, factor = bvh_joints_metres(clip, "cmu", parse_unit("m"))
    assert factor == 1.0
    original, _, _ = bvh_joints_metres(read_bvh(require(CLIP_131)))
    np.testing.assert_allclose(in_metres[: len(original)], original, atol=1e-4)


def test_centimetres_and_inches_are_named():
    rokoko = read_bvh(MOCAP / "rokoko_jesse_dance_100.bvh.gz")  # Rokoko: centimetres, a Mixamo-named skeleton
    with pytest.raises(BoneMapError, match=r"86\.5 m long in metres.*likely in centimetres, pass --unit cm"):
        bvh_joints_metres(rokoko)
    inches = read_bvh(scaled_bvh(text_of(cmu_clip("60_01")), 1 / 2.54))  # the cm Daz skeleton rewritten in inches
    with pytest.raises(BoneMapError, match=r"likely in inches, pass --unit in\b"):
        bvh_joints_metres(inches)  # its map says centimetres
    joints, _, factor = bvh_joints_metres(inches, unit="auto")
    assert factor == 0.0254
    expected, _, _ = bvh_joints_metres(read_bvh(cmu_clip("60_01")))
    np.testing.assert_allclose(joints, expected, atol=1e-5)


def test_a_170_m_person_is_refused():
    giant = read_bvh(scaled_bvh(text_of(cmu_clip("60_01")), 100.0))  # centimetre numbers times 100
    with pytest.raises(BoneMapError, match=r"not a human-sized skeleton: its legs .* 82\.2 m long"):
        bvh_joints_metres(giant)


def test_unit_option_values():
    assert parse_unit("cm") == 0.01 and parse_unit(" AUTO ") == "auto" and parse_unit("0.5") == 0.5
    with pytest.raises(BoneMapError, match="--unit"):
        parse_unit("furlong")


# --- drafts -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("clip", "bundled"), [(CLIP_131, "cmu"), (cmu_clip("60_01"), "cgspeed_daz")])
def test_drafts_agree_with_the_hand_made_maps_on_limbs_head_and_unit(clip, bundled):
    draft, unmatched = draft_bone_map(read_bvh(require(clip)), "draft")
    expected = json.loads((BONE_MAP_DIR / f"{bundled}.json").read_text())
    assert unmatched == []
    for joint in [*LIMBS, "pelvis", "head", "neck"]:
        assert draft["joints"][joint] == expected["joints"][joint], joint
    assert draft["unit_to_metres"] == expected["unit_to_metres"]


@pytest.mark.parametrize("name", ["geno_stance", "rokoko_jesse_dance_100", "fair1_dab_60"])
def test_drafts_of_third_party_skeletons_map_every_joint_onto_a_human(name, tmp_path):
    out = tmp_path / f"{name}.json"
    assert main(["bonemap", str(MOCAP / f"{name}.bvh.gz"), "-o", str(out)]) == 0
    bone_map = load_bone_map(out)
    clip = read_bvh(MOCAP / f"{name}.bvh.gz")
    joints, _, _ = bvh_joints_metres(clip, bone_map)
    assert 0.6 <= leg_length(joints) <= 1.3
    names = {s.bones[0] for s in bone_map.sources if s.kind == "joint"}
    assert {"LeftHand", "RightHand", "LeftFoot", "RightFoot", "Head", "Hips"} <= names


def test_a_draft_with_unmatched_joints_marks_them_and_does_not_load(tmp_path, capsys):
    # An unnamed hand leaves that arm open; an unnamed shin is still found: the joint between thigh and foot.
    text = text_of(cmu_clip("60_01")).replace("lHand", "claw_1").replace("rShin", "segment_7")
    path = tmp_path / "odd.bvh"
    path.write_text(text)
    out = tmp_path / "odd.json"
    assert main(["bonemap", str(path), "-o", str(out)]) == 1
    assert "unmatched" in capsys.readouterr().err
    data = json.loads(out.read_text())
    left_arm = ["left_collar", "left_shoulder", "left_elbow", "left_wrist"]
    assert data["unmatched"] == left_arm and all(data["joints"][j] is None for j in left_arm)
    assert data["joints"]["right_knee"] == {"joint": "segment_7"}
    assert "claw_1" in data["bvh_joints"]
    with pytest.raises(BoneMapError, match="left_collar: not mapped yet"):
        load_bone_map(out)
    filled = dict(zip(left_arm, ["lCollar", "lShldr", "lForeArm", "claw_1"], strict=True))
    data["joints"] = {j: s or {"joint": filled[j]} for j, s in data["joints"].items()}
    out.write_text(json.dumps(data))
    expected = bvh_to_smpl_joints(read_bvh(cmu_clip("60_01")), "cgspeed_daz")
    joints = bvh_to_smpl_joints(read_bvh(text), load_bone_map(out))
    limbs = [JOINT_NAMES.index(j) for j in LIMBS]
    np.testing.assert_allclose(joints[:, limbs], expected[:, limbs], atol=1e-9)


def test_encode_uses_the_unit_option(tmp_path, capsys):
    path = MOCAP / "rokoko_jesse_dance_100.bvh.gz"
    assert main(["encode", str(path), "-o", str(tmp_path / "f.npy")]) == 2
    assert "--unit cm" in capsys.readouterr().err
    assert main(["encode", str(path), "-o", str(tmp_path / "f.npy"), "--unit", "cm"]) == 0
    assert np.load(tmp_path / "f.npy").shape == (19, 263)
    assert Path(tmp_path / "f.npy").exists()
