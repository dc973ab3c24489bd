"""The held-out real mocap clips (backend/assets/heldout): labelled clips -> SMPL-22 joints at 20 fps."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.motion.bone_map import bvh_to_smpl_joints, load_bone_map
from shared.motion.bvh import read_bvh
from shared.motion.resample import resample_linear

from .caption_family import ACCEPTED
from .checks import analyse, windowed_speeds

# Travels with the repository, not with an installed backend (like the CMU training clips).
HELDOUT_DIR = Path(__file__).resolve().parents[2] / "assets" / "heldout"
FPS = 20.0
MAX_FRAMES = 196


@dataclass(frozen=True)
class LabelledClip:
    """A motion with the action family it shows: joints (T, 22, 3) float32 at 20 fps, Y-up metres."""

    name: str
    family: str
    joints: np.ndarray
    source: str  # "real" or "synthetic"
    description: str = ""

    @property
    def speed(self) -> float:
        """Median horizontal pelvis speed (m/s) over 0.5 s spans: the walk < 1.8 m/s < run measure."""
        body = analyse(self.joints)
        return float(np.median(windowed_speeds(body, 0, body.frames)))


def load_real_clips(folder: str | Path = HELDOUT_DIR) -> list[LabelledClip]:
    """Every clip listed in `<folder>/clips.tsv`: its BVH read through its bone map, resampled to 20 fps, at most
    196 frames, the floor moved to y = 0."""
    folder = Path(folder)
    index = folder / "clips.tsv"
    if not index.is_file():
        raise FileNotFoundError(f"{index}: no such file (the held-out clips travel with the repository)")
    clips = []
    for row in csv.DictReader(index.open(encoding="utf-8"), delimiter="\t"):
        if row["family"] not in ACCEPTED:
            raise ValueError(f"{index}: clip {row['clip']}: unknown family {row['family']!r}")
        bone_map = row["bone_map"]
        if bone_map.endswith(".json"):
            bone_map = str(folder / bone_map)
        clip = read_bvh(folder / "bvh" / f"{row['clip']}.bvh.gz")
        joints = resample_linear(bvh_to_smpl_joints(clip, load_bone_map(bone_map)), clip.fps, FPS)[:MAX_FRAMES]
        joints[..., 1] -= joints[:, [7, 8, 10, 11], 1].min()
        joints = joints.astype(np.float32)
        clips.append(LabelledClip(row["clip"], row["family"], joints, "real", row["source_description"]))
    return clips
