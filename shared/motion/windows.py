"""Clips longer than the model's window: action boundaries, caption windows, and the window around a span to fill.

One policy for the command line, the server and the add-on (all at 20 fps, feature rows): a clip that fits the window
is used whole; a longer clip is captioned in windows of at most `window` frames that end on an action boundary (a
pause) where one is found in the window's second half, and otherwise overlap the next window by `overlap` frames;
prediction continues from the last `window` frames; in-betweening fills each gap from the window around it. What
cannot fit (a gap longer than the window) is refused with the span, its length and the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .humanml3d import FPS, LAYOUT, gaussian_smooth

WINDOW_FRAMES = 196  # the model's longest motion (9.8 s at 20 fps)
OVERLAP_FRAMES = 40  # 2 s shared by consecutive caption windows that do not meet at an action boundary
MIN_WINDOW_FRAMES = 40  # a last caption window shorter than this takes more of the frames before it
PAUSE_FRACTION = 0.5  # an action boundary: a local minimum of activity below this fraction of the clip's median
MIN_ACTION_S = 1.0  # boundaries at least this far apart (and from the clip's ends)


class WindowError(ValueError):
    """A request the model's window cannot serve (the message names the span, its length and the limit)."""


@dataclass(frozen=True)
class Window:
    """Feature rows [start, end) of a clip at 20 fps."""

    start: int
    end: int

    @property
    def start_s(self) -> float:
        return self.start / FPS

    @property
    def end_s(self) -> float:
        return self.end / FPS

    @property
    def frames(self) -> int:
        return self.end - self.start


def motion_activity(features: np.ndarray) -> np.ndarray:
    """(T,) how much is moving per frame, m/s: the mean speed of the 22 joints (root-relative velocities plus the
    root's own planar speed), from (T, 263) HumanML3D features."""
    features = np.asarray(features, dtype=np.float64)
    local = features[:, LAYOUT.local_velocity].reshape(len(features), -1, 3)  # (T, 22, 3) metres per frame
    root = np.linalg.norm(features[:, LAYOUT.root_linear_velocity], axis=-1)  # (T,) metres per frame
    return (np.linalg.norm(local, axis=-1).mean(axis=1) + root) * FPS


def action_boundaries(features: np.ndarray, min_action_s: float = MIN_ACTION_S) -> list[int]:
    """Frames where one action likely ends and the next begins: pauses, i.e. local minima of the smoothed activity
    below PAUSE_FRACTION of the clip's median, at least `min_action_s` apart and from the clip's ends."""
    activity = motion_activity(features)
    if len(activity) < 3:
        return []
    smooth = gaussian_smooth(activity, sigma=0.25 * FPS)
    gap = max(1, round(min_action_s * FPS))
    threshold = PAUSE_FRACTION * float(np.median(smooth))
    candidates = [
        t
        for t in range(gap, len(smooth) - gap)
        if smooth[t] < threshold and smooth[t] == smooth[max(0, t - gap) : t + gap + 1].min()
    ]
    chosen: list[int] = []
    for t in sorted(candidates, key=lambda t: smooth[t]):  # deepest pauses first
        if all(abs(t - c) >= gap for c in chosen):
            chosen.append(t)
    return sorted(chosen)


def caption_windows(
    frames: int,
    window: int = WINDOW_FRAMES,
    boundaries: list[int] | tuple[int, ...] = (),
    overlap: int = OVERLAP_FRAMES,
    min_frames: int = MIN_WINDOW_FRAMES,
) -> list[Window]:
    """Windows of at most `window` frames covering [0, frames): one window when the clip fits; otherwise each window
    ends on the latest action boundary in its second half (the next one starts there), or else at its full length
    with the next one starting `overlap` frames earlier. A last window shorter than `min_frames` starts earlier."""
    if frames < 1 or window < 2:
        raise WindowError(f"caption windows: {frames} frames in windows of {window}")
    overlap = min(overlap, window // 2)
    windows: list[Window] = []
    start = 0
    while frames - start > window:
        cuts = [b for b in boundaries if start + window // 2 <= b <= start + window]
        end = max(cuts) if cuts else start + window
        windows.append(Window(start, end))
        start = end if cuts else end - overlap
    start = min(start, max(0, frames - min(window, max(min_frames, frames - start))))
    windows.append(Window(start, frames))
    return windows


def prediction_context(frames: int, window: int = WINDOW_FRAMES) -> Window:
    """The frames a continuation is predicted from: the last `window` frames of the clip."""
    return Window(max(0, frames - window), frames)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def inbetween_windows(known: np.ndarray, window: int = WINDOW_FRAMES) -> list[tuple[Window, list[tuple[int, int]]]]:
    """For a clip whose `known` (T,) frames are kept: windows of at most `window` frames, each with the gaps
    (unknown runs, clip frames [start, end)) it fills. Gaps close together share a window; each window reaches as far
    around its gaps as the limit allows but never into another window's gap. Raises WindowError for a gap that leaves
    no room for a known frame."""
    known = np.asarray(known, dtype=bool)
    total = len(known)
    gaps = _runs(~known)
    if total <= window:
        return [(Window(0, total), gaps)] if gaps else []
    for start, end in gaps:
        if end - start > window - 1:
            raise WindowError(
                f"frames {start}..{end - 1} to fill ({end - start} frames, {(end - start) / FPS:g} s) are longer than "
                f"the model's window of {window} frames ({window / FPS:g} s) less one known frame"
            )
    groups: list[list[tuple[int, int]]] = []
    for gap in gaps:
        if groups and gap[1] - groups[-1][0][0] <= window - 2:
            groups[-1].append(gap)
        else:
            groups.append([gap])
    result = []
    for k, group in enumerate(groups):
        first, last = group[0][0], group[-1][1]
        lower = groups[k - 1][-1][1] if k else 0  # not into the previous window's gaps
        upper = groups[k + 1][0][0] if k + 1 < len(groups) else total
        start = max(lower, first - (window - (last - first)) // 2)  # centred on the gaps where there is room
        end = min(upper, start + window)
        start = max(lower, end - window)
        result.append((Window(start, end), group))
    return result
