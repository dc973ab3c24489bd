"""Simple semantic checks of a motion against its prompt (walks travel, jumps lift the pelvis, waves raise the named
wrist, turns turn the named way), for prompts the checks understand; None for the others.

The thresholds are those of the demo model's semantic tests (tests/test_demo_model.py). A paraphrase suite with
its own checks is meant to replace these.
"""

from __future__ import annotations

import re

import numpy as np

from shared.motion.shot_math import facing_of_joints

TRAVEL_M = 1.0  # a walk or run moves the pelvis at least this far
LIFT_M = 0.15  # a jump lifts the pelvis this far above its median height
WAVE_UP = 0.3  # the waving wrist is above its shoulder on at least this share of frames
OTHER_DOWN = 0.1  # ... and the other wrist on less than this share
TURN_RAD = np.deg2rad(30.0)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def check_kind(text: str) -> str | None:
    """Which check applies to a prompt: 'wave_left' / 'wave_right', 'jump', 'turn_left' / 'turn_right', 'travel';
    None when none does."""
    words = _words(text)
    side = "left" if "left" in words else "right" if "right" in words else None
    if words & {"wave", "waves", "waving"} and side:
        return f"wave_{side}"
    if words & {"jump", "jumps", "jumping", "hops", "hop"}:
        return "jump"
    if words & {"turn", "turns", "turning"} and side and not words & {"walk", "walks", "run", "runs"}:
        return f"turn_{side}"
    if words & {"walk", "walks", "walking", "run", "runs", "running", "jog", "jogs", "jogging"}:
        return "travel"
    return None


def passes(text: str, joints: np.ndarray) -> bool | None:
    """Whether (T, 22, 3) joints (20 fps) do what `text` says, or None when no check applies."""
    kind = check_kind(text)
    if kind is None:
        return None
    if kind == "travel":
        floor = joints[::10, 0][:, [0, 2]]  # every half second: steps, not sway
        return bool(np.linalg.norm(np.diff(floor, axis=0), axis=1).sum() >= TRAVEL_M)
    if kind == "jump":
        pelvis = joints[:, 0, 1]
        return bool(pelvis.max() - np.median(pelvis) >= LIFT_M)
    if kind.startswith("wave"):
        wrist, shoulder, other, other_shoulder = (21, 17, 20, 16) if kind == "wave_right" else (20, 16, 21, 17)
        up = float((joints[:, wrist, 1] > joints[:, shoulder, 1]).mean())
        other_up = float((joints[:, other, 1] > joints[:, other_shoulder, 1]).mean())
        return up >= WAVE_UP and other_up < OTHER_DOWN
    turned = np.unwrap(facing_of_joints(joints))
    change = float(turned[-5:].mean() - turned[:5].mean())
    return change > TURN_RAD if kind == "turn_left" else change < -TURN_RAD
