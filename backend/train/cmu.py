"""The real CMU clips of the reference data as training windows with our own varied captions."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.motion.bone_map import bvh_to_smpl_joints
from shared.motion.bvh import read_bvh
from shared.motion.humanml3d import FPS, joints_to_features
from shared.motion.resample import resample_linear

# Caption families per CMU category: {subject} is filled with varied subjects; every line describes the motion
# as a person would type it. Written for this project from CMU's own trial descriptions.
SUBJECTS = ("a person", "someone", "a man", "a woman", "the dancer", "a figure")
CAPTIONS: dict[str, tuple[str, ...]] = {
    "salsa": (
        "{subject} dances salsa",
        "{subject} does salsa steps",
        "{subject} is dancing salsa with a partner",
        "{subject} dances to latin music, stepping back and forth",
        "salsa dancing",
        "{subject} performs a salsa routine, turning and stepping to the beat",
        "{subject} moves their hips and feet in a salsa dance",
    ),
    "indian": (
        "{subject} performs an indian dance",
        "{subject} does a traditional indian dance with expressive arm movements",
        "{subject} dances gracefully, moving the arms and hands",
        "indian classical dance",
        "{subject} is dancing in an indian style",
    ),
    "walk": (
        "{subject} starts walking forward and then stops",
        "{subject} walks forward slowly and comes to a stop",
        "{subject} takes a few steps forward and stops",
        "{subject} walks ahead in a stylised way",
        "walk forward then stop",
    ),
    "kata": (
        "{subject} performs a karate kata",
        "{subject} practises martial arts moves, stepping, punching and blocking",
        "{subject} does a sequence of karate techniques",
        "karate kata",
    ),
    "front kick": (
        "{subject} steps forward and does a front kick",
        "{subject} kicks straight ahead",
        "{subject} performs a karate front kick",
        "front kick",
    ),
    "roundhouse kick": (
        "{subject} does a roundhouse kick",
        "{subject} swings a leg around in a roundhouse kick",
        "{subject} performs a karate roundhouse kick",
    ),
    "side kick": (
        "{subject} kicks to the side",
        "{subject} performs a karate side kick",
        "{subject} lifts a leg and kicks sideways",
    ),
    "block": (
        "{subject} steps forward and blocks with the arms",
        "{subject} performs a karate block",
        "{subject} does martial arts blocking moves",
    ),
    "punch": (
        "{subject} steps forward and punches",
        "{subject} does a lunge punch",
        "{subject} throws punches while stepping forward",
    ),
}


def category_of(text: str) -> str:
    """Our caption family for one row of the reference `descriptions.tsv` (its `text` column)."""
    text = text.lower()
    for key, words in (
        ("salsa", ("salsa",)),
        ("indian", ("indian",)),
        ("walk", ("walk",)),
        ("roundhouse kick", ("roundhouse",)),
        ("side kick", ("side kick",)),
        ("front kick", ("front kick",)),
        ("punch", ("punch",)),
        ("block", ("block",)),
        ("kata", ("kata",)),
    ):
        if any(word in text for word in words):
            return key
    raise ValueError(f"no caption family for CMU description {text!r}")


def captions_for(category: str, rng: np.random.Generator, count: int = 6) -> list[str]:
    """`count` distinct captions of a family with varied subjects."""
    templates = CAPTIONS[category]
    chosen = rng.choice(len(templates), size=min(count, len(templates)), replace=False)
    return [templates[i].format(subject=SUBJECTS[rng.integers(len(SUBJECTS))]) for i in chosen]


@dataclass
class CmuWindow:
    """One training window of a CMU clip: joints (T, 22, 3) and features (T-1, 263) at 20 fps, captions."""

    name: str
    joints: np.ndarray
    features: np.ndarray
    captions: list[str]
    labels: dict[str, object] = field(default_factory=dict)


# The CMU clips that travel with the repository (not installed with the package): see its README.
BUNDLED_CMU = Path(__file__).resolve().parents[1] / "assets" / "cmu"


def clip_path(cmu_folder: Path, trial_id: str) -> Path:
    """`<cmu_folder>/bvh20/<trial_id>.bvh.gz`, or the uncompressed `.bvh` where only that exists."""
    compressed = cmu_folder / "bvh20" / f"{trial_id}.bvh.gz"
    return compressed if compressed.is_file() else compressed.with_suffix("")


def cmu_windows(cmu_folder: Path, seed: int = 0, window: int = 160, stride: int = 100) -> list[CmuWindow]:
    """Every clip of `<cmu_folder>/bvh20` cut into windows of `window` frames every `stride` frames."""
    rng = np.random.default_rng(seed)
    rows = list(csv.DictReader((cmu_folder / "descriptions.tsv").open(encoding="utf-8"), delimiter="\t"))
    windows: list[CmuWindow] = []
    for row in rows:
        clip = read_bvh(clip_path(cmu_folder, row["trial_id"]))
        joints = resample_linear(bvh_to_smpl_joints(clip), clip.fps, FPS)
        if row["subject"] == "135":  # frame 0 of these files is a leftover pose (narrow stance, feet below floor)
            joints = joints[1:]
        category = category_of(row["text"])
        starts = range(0, max(1, len(joints) - window + 1), stride)
        for start in starts:
            part = joints[start : start + window]
            if len(part) < 40:
                continue
            windows.append(
                CmuWindow(
                    name=f"cmu_{row['trial_id']}_{start:04d}",
                    joints=part.astype(np.float32),
                    features=joints_to_features(part),
                    captions=captions_for(category, rng),
                    labels={"source": "cmu", "trial": row["trial_id"], "category": category},
                )
            )
    return windows
