"""CMU reference clips become 20 fps windows whose captions name what the clip's own CMU description says."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from reference import CMU_FOLDER

from backend.train.cmu import CAPTIONS, captions_for, category_of, cmu_windows
from shared.motion.humanml3d import features_to_joints
from shared.motion.skeleton import bone_lengths


def test_every_cmu_description_has_a_caption_family():
    rows = list(csv.DictReader((CMU_FOLDER / "descriptions.tsv").open(), delimiter="\t"))
    families = {row["trial_id"]: category_of(row["text"]) for row in rows}
    assert families["60_01"] == "salsa" and families["94_04"] == "indian" and families["131_01"] == "walk"
    assert families["135_04"] == "front kick" and families["135_07"] == "roundhouse kick"
    assert families["135_11"] == "side kick" and families["135_09"] == "punch" and families["135_05"] == "block"
    with pytest.raises(ValueError, match="no caption family"):
        category_of("a person juggles")


def test_captions_are_distinct_and_on_topic():
    rng = np.random.default_rng(0)
    for family, templates in CAPTIONS.items():
        captions = captions_for(family, rng, count=4)
        assert len(set(captions)) == len(captions) == min(4, len(templates))
    assert all("kick" in c for c in captions_for("side kick", rng))
    assert all("salsa" in c or "latin" in c for c in captions_for("salsa", rng, count=7))


def test_windows_are_valid_motions():
    windows = cmu_windows(CMU_FOLDER, seed=1, window=160, stride=100)
    assert len(windows) > 150
    names = [w.name for w in windows]
    assert len(set(names)) == len(names)
    walk = [w for w in windows if w.labels["trial"] == "131_01"]
    assert walk and all(40 <= len(w.joints) <= 160 for w in windows)
    for window in windows[::25]:
        assert window.features.shape == (len(window.joints) - 1, 263) and np.all(np.isfinite(window.features))
        decoded = features_to_joints(window.features)
        lengths = bone_lengths(decoded)
        np.testing.assert_allclose(lengths, lengths[:1].repeat(len(lengths), 0), atol=1e-5)  # retargeted skeleton
    # The walk window moves forward (positive heading-local forward velocity).
    assert sum(w.features[:, 2].sum() for w in walk) > 1.0
