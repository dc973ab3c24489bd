"""The synthetic generator's extra action families (bow, punch, throw, hop, crawl, climb, jog, sprint), judged by the
paraphrase suite's independent checks, and the default output kept byte-identical (the embedded model's data)."""

from __future__ import annotations

import hashlib
import json

from backend.train.synthetic import generate_synthetic_set, make_clip

# Measured before the extra families were added (commit f7b1361); the default set must never change.
DEFAULT_SET_SHA256 = "ce87307e3ae67f28280920ad2570b29de0618d5937fe40684d01bf00c3209ba7"
DEFAULT_PLANS_SHA256 = "8c5349d0f16cf8b19c678fac151ab2a49b2112dcf0b7583a769c617f7dd5670a"
DEFAULT_PLANS = [
    [("walk", {"direction": "forward", "pace": "fast"}), ("wave", {"hand": "right"})],
    [("run", {})],
    [("jump", {"direction": "forward"}), ("kick", {"side": "left"})],
    [("sit_down", {}), ("stand_up", {})],
    [("turn", {"direction": "left", "degrees": 90})],
]


def fingerprint(clips) -> str:
    """sha256 over every clip's joints, features, captions and labels."""
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(clip.joints.tobytes())
        digest.update(clip.features.tobytes())
        digest.update("\n".join(clip.captions).encode())
        digest.update(json.dumps(clip.labels, sort_keys=True).encode())
    return digest.hexdigest()


def test_default_set_is_unchanged():
    assert fingerprint(generate_synthetic_set(2026, 40)) == DEFAULT_SET_SHA256


def test_default_planned_clips_are_unchanged():
    assert fingerprint([make_clip(7, plan) for plan in DEFAULT_PLANS]) == DEFAULT_PLANS_SHA256
