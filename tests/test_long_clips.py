"""Clips longer than the model's window: the window plans (hand-derived cases), action boundaries on real motion,
prediction and in-betweening of long clips with a tiny random-weight model, and refusals naming file, length, limit."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.cli import main
from backend.model.checkpoint import save_safetensors
from backend.model.config import tiny_config
from backend.model.loading import build_model
from backend.tasks.long_clips import caption_segments, inbetween_long, joined_caption, predict_long
from shared.motion.humanml3d import LAYOUT
from shared.motion.windows import (
    WindowError,
    action_boundaries,
    caption_windows,
    inbetween_windows,
    motion_activity,
    prediction_context,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_config(), None, "random")


def test_a_clip_that_fits_is_one_window():
    assert [(w.start, w.end) for w in caption_windows(196)] == [(0, 196)]
    assert [(w.start, w.end) for w in caption_windows(5)] == [(0, 5)]


def test_windows_without_boundaries_overlap_by_two_seconds():
    # 500 frames: [0, 196), [156, 352), then the rest [312, 500) (188 frames).
    assert [(w.start, w.end) for w in caption_windows(500)] == [(0, 196), (156, 352), (312, 500)]


def test_windows_end_on_the_latest_boundary_in_their_second_half():
    # Boundaries at 50 (first half: ignored), 120 and 150 -> cut at 150, the next window starts there.
    windows = caption_windows(400, boundaries=[50, 120, 150, 300])
    assert [(w.start, w.end) for w in windows] == [(0, 150), (150, 300), (300, 400)]


def test_a_short_last_window_takes_frames_before_it():
    # 210 frames cut at the boundary 190: 20 frames would be left -> the last window is the last 40 frames.
    assert [(w.start, w.end) for w in caption_windows(210, boundaries=[190])] == [(0, 190), (170, 210)]


@pytest.mark.parametrize("frames", [197, 391, 1000, 6001])
def test_windows_cover_every_frame_within_the_limit(frames):
    windows = caption_windows(frames, boundaries=list(range(37, frames, 173)))
    assert windows[0].start == 0 and windows[-1].end == frames
    assert all(0 < w.frames <= 196 for w in windows)
    assert all(a.start < b.start <= a.end for a, b in itertools.pairwise(windows))


def still_features(features: np.ndarray, frames: int) -> np.ndarray:
    """`frames` rows of someone standing still in the pose of the first row (every velocity zero)."""
    still = np.repeat(features[:1], frames, axis=0).copy()
    for block in (LAYOUT.root_rot_velocity, LAYOUT.root_linear_velocity, LAYOUT.local_velocity):
        still[:, block] = 0.0
    return still


def test_the_pause_between_two_walks_is_an_action_boundary(cmu_walk):
    walk = cmu_walk[0][50:125]  # the steady walking part of CMU 131_01 ("start, walk, stop")
    clip = np.concatenate([walk, still_features(walk[-1:], 60), walk])
    boundaries = action_boundaries(clip)
    assert len(boundaries) == 1 and 75 <= boundaries[0] < 135
    assert motion_activity(walk).mean() > 0.5  # m/s: walking
    assert action_boundaries(np.concatenate([walk, walk])) == []  # a steady walk has no pause


def test_inbetween_windows_keep_each_gap_and_stay_out_of_the_others():
    known = np.ones(600, dtype=bool)
    known[100:130] = known[450:480] = False
    plan = inbetween_windows(known)
    assert [gaps for _, gaps in plan] == [[(100, 130)], [(450, 480)]]
    for (window, gaps), other in zip(plan, [(450, 480), (100, 130)], strict=True):
        assert window.frames == 196 and window.start <= gaps[0][0] and gaps[-1][1] <= window.end
        assert not (window.start < other[1] and other[0] < window.end)
    known[135:140] = False  # a gap close to the first joins its window
    assert inbetween_windows(known)[0][1] == [(100, 130), (135, 140)]


def test_a_gap_longer_than_the_window_is_refused_with_its_span_and_the_limit():
    known = np.ones(600, dtype=bool)
    known[100:400] = False
    with pytest.raises(WindowError, match=r"frames 100\.\.399 to fill \(300 frames, 15 s\).*196 frames \(9\.8 s\)"):
        inbetween_windows(known)


def test_prediction_continues_from_the_last_window(model, cmu_walk):
    clip = np.concatenate([cmu_walk[0]] * 3)  # 495 frames
    assert (prediction_context(len(clip)).start, prediction_context(len(clip)).end) == (495 - 196, 495)
    (motion,) = predict_long(model, clip, 30, steps=3)
    assert motion.shape == (495 + 30, 263)
    np.testing.assert_allclose(motion[:495], clip, atol=1e-5)  # the whole clip comes back first


def test_inbetween_of_a_long_clip_fills_only_its_gaps(model, cmu_walk):
    clip = np.concatenate([cmu_walk[0]] * 3)
    known = np.ones(len(clip), dtype=bool)
    known[60:90] = known[400:420] = False
    (filled,) = inbetween_long(model, clip, known, steps=3, refine_steps=2)
    assert filled.shape == clip.shape
    np.testing.assert_array_equal(filled[known], clip[known].astype(np.float32))
    assert not np.allclose(filled[60:90], clip[60:90], atol=1e-3)


def test_caption_segments_of_clips_of_any_length(model, cmu_walk):
    short, long = cmu_walk[0][:100], np.concatenate([cmu_walk[0]] * 4)  # 5 s and 33 s
    segments = caption_segments(model, [short, long], batch=3)
    assert [(s.start, s.end) for s in segments[0]] == [(0, 100)]
    windows = caption_windows(660, boundaries=action_boundaries(long))
    assert [(s.start, s.end, s.start_s, s.end_s) for s in segments[1]] == [
        (w.start, w.end, w.start / 20, w.end / 20) for w in windows
    ]
    assert all(s.caption for group in segments for s in group)
    alone = caption_segments(model, [long], batch=16)[0]  # a caption does not depend on its batch
    assert [s.caption for s in alone] == [s.caption for s in segments[1]]
    assert joined_caption(alone).startswith(alone[0].caption)


def test_cli_refusals_name_the_file_its_length_and_the_limit(model, cmu_walk, tmp_path, capsys):
    checkpoint = tmp_path / "tiny.safetensors"
    save_safetensors(model, model.config, checkpoint)
    path = tmp_path / "long.npy"
    np.save(path, np.concatenate([cmu_walk[0]] * 3))
    common = ["--checkpoint", str(checkpoint), "--steps", "2"]
    assert main(["predict", str(path), "--frames", "300", *common, "-o", str(tmp_path / "p")]) == 2
    error = capsys.readouterr().err
    assert str(path) in error and "495 frames" in error and "1..196" in error
    assert main(["inbetween", str(path), "--known", "0:50,400:", *common, "-o", str(tmp_path / "i")]) == 2
    error = capsys.readouterr().err
    assert str(path) in error and "495 frames" in error and "350 frames" in error and "196 frames" in error
    assert not Path(tmp_path / "p.npy").exists() and not Path(tmp_path / "i.npy").exists()


def test_the_server_returns_time_stamped_segments_for_a_long_clip(cmu_walk):
    from serving import connected_client, oracle_copy, running_server, tiny_model

    model = tiny_model()
    oracle = oracle_copy(model)
    clip = np.concatenate([cmu_walk[0]] * 3).astype(np.float32)  # 495 frames, 24.75 s
    with running_server(model) as server, connected_client(server.address) as client:
        long = client.request("caption", {"segments": True}, {"features": clip})
        short = client.request("caption", {}, {"features": clip[:100]})
        refused = client.request("caption", {}, {"features": clip})
    expected = caption_segments(oracle, [clip])[0]
    assert long.fields["segments"] == [{"start_s": s.start_s, "end_s": s.end_s, "caption": s.caption} for s in expected]
    assert long.fields["segments"][0]["start_s"] == 0.0 and long.fields["segments"][-1]["end_s"] == 24.75
    assert long.fields["caption"] == joined_caption(expected)
    assert short.fields["caption"] == caption_segments(oracle, [clip[:100]])[0][0].caption
    assert "segments" not in short.fields
    assert (refused.type, refused.fields["code"]) == ("error", "bad_request")
    assert refused.fields["message"] == "features: 495 frames is outside 2..196"
