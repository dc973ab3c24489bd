"""Checks on the model's inputs and the per-request random generators (used by the model and the tasks above it)."""

from __future__ import annotations

import numpy as np
import torch

from shared.motion.humanml3d import MotionShapeError, check_features


class TaskError(ValueError):
    """A request the model cannot serve (length out of range, empty input, bad mask ...)."""


def request_generator(seed: int, candidate: int = 0) -> torch.Generator:
    """A CPU generator for one (request seed, candidate index); independent streams for different pairs."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(candidate)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def check_clip(features: np.ndarray, name: str, min_frames: int = 1) -> np.ndarray:
    """Raw (T, 263) finite features as float32 (shared validation), with at least `min_frames` frames."""
    try:
        checked = check_features(features, name)
    except MotionShapeError as error:
        raise TaskError(str(error)) from None
    if len(checked) < min_frames:
        raise TaskError(f"{name}: needs at least {min_frames} frames, got {len(checked)}")
    return checked.astype(np.float32)


def check_known_mask(known_mask: np.ndarray, frames: int) -> np.ndarray:
    """A (frames,) boolean mask of the known frames with at least one frame known (in-betweening's input)."""
    known = np.asarray(known_mask, dtype=bool)
    if known.shape != (frames,):
        raise TaskError(f"known_mask: expected shape ({frames},), got {known.shape}")
    if not known.any():
        raise TaskError("known_mask: at least one frame must be known")
    return known
