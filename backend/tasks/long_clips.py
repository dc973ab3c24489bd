"""Clips of any length through the model's window (`shared/motion/windows.py`): captions as time-stamped segments,
prediction from the last window, in-betweening gap by gap in the window around it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.model.inputs import TaskError, check_known_mask
from backend.model.inputs import check_clip as _check_clip
from backend.model.motiongpt3 import MotionGPT3
from shared.motion.windows import (
    Window,
    WindowError,
    action_boundaries,
    caption_windows,
    inbetween_windows,
    prediction_context,
)

from .inference import NO_CONTROL, TaskControl, inbetween, motion_to_text, predict

CAPTION_BATCH = 16  # windows captioned per model call


@dataclass(frozen=True)
class Segment:
    """One captioned window of a clip: feature rows [start, end) at 20 fps and its times in seconds."""

    start: int
    end: int
    start_s: float
    end_s: float
    caption: str


def clip_windows(model: MotionGPT3, features: np.ndarray) -> list[Window]:
    """The caption windows of a (T, 263) clip: the whole clip when it fits the model's window, else windows on its
    action boundaries (see `shared/motion/windows.py`)."""
    window = model.config.max_frames
    boundaries = action_boundaries(features) if len(features) > window else []
    return caption_windows(len(features), window, boundaries)


def caption_window_clips(
    model: MotionGPT3,
    clips: Sequence[np.ndarray],
    batch: int = CAPTION_BATCH,
    control: TaskControl = NO_CONTROL,
) -> list[str]:
    """Greedy captions of clips that fit the model's window, `batch` at a time (each caption is the same whatever else
    is in its batch)."""
    captions: list[str] = []
    for k in range(0, len(clips), batch):
        captions += motion_to_text(model, clips[k : k + batch], do_sample=False, control=control)
    return captions


def caption_segments(
    model: MotionGPT3,
    features_list: Sequence[np.ndarray],
    batch: int = CAPTION_BATCH,
    control: TaskControl = NO_CONTROL,
) -> list[list[Segment]]:
    """Time-stamped captions of clips of any length: per clip, one segment per window, all windows of all clips
    captioned together `batch` at a time."""
    clips = [_check_clip(f, f"features[{i}]", min_frames=2) for i, f in enumerate(features_list)]
    plans = [clip_windows(model, clip) for clip in clips]
    pieces = [clip[w.start : w.end] for clip, plan in zip(clips, plans, strict=True) for w in plan]
    captions = iter(caption_window_clips(model, pieces, batch, control))
    return [[Segment(w.start, w.end, w.start_s, w.end_s, next(captions)) for w in plan] for plan in plans]


def joined_caption(segments: Sequence[Segment]) -> str:
    """One line for a whole clip: the segments' captions in order, a caption repeated by the next segment once."""
    captions = [s.caption for s in segments]
    return "; ".join(c for k, c in enumerate(captions) if k == 0 or c != captions[k - 1])


def predict_long(
    model: MotionGPT3, features: np.ndarray, frames: int, control: TaskControl = NO_CONTROL, **sampling
) -> list[np.ndarray]:
    """`predict` for a clip of any length: the continuation is predicted from the clip's last window and returned
    after the whole clip, (T + frames, 263) per candidate."""
    clip = _check_clip(features, "features", min_frames=2)
    context = prediction_context(len(clip), model.config.max_frames)
    motions = predict(model, clip[context.start :], frames, control=control, **sampling)
    return [np.concatenate([clip[: context.start], motion]) for motion in motions]


def inbetween_long(
    model: MotionGPT3,
    features: np.ndarray,
    known_mask: np.ndarray,
    control: TaskControl = NO_CONTROL,
    **options,
) -> list[np.ndarray]:
    """`inbetween` for a clip of any length: each group of nearby gaps is filled from the window around it; frames
    outside every window come back unchanged. A gap longer than the window raises TaskError (span, length, limit)."""
    clip = _check_clip(features, "features", min_frames=2)
    known = check_known_mask(known_mask, len(clip))
    if len(clip) <= model.config.max_frames:
        return inbetween(model, clip, known, control=control, **options)
    try:
        plan = inbetween_windows(known, model.config.max_frames)
    except WindowError as error:
        raise TaskError(f"known_mask: {error}") from None
    results: list[np.ndarray] | None = None
    for window, _ in plan:
        part = inbetween(model, clip[window.start : window.end], known[window.start : window.end], control=control,
                         **options)  # fmt: skip
        if results is None:
            results = [clip.copy() for _ in part]
        for result, filled in zip(results, part, strict=True):
            result[window.start : window.end] = filled
    if results is None:  # nothing to fill
        return [clip.copy() for _ in range(int(options.get("candidates", 1)))]
    for result in results:
        result[known] = clip[known]  # exactly, not through the model's normalisation
    return results
