"""Synthetic clip sets: deterministic generation from a seed, and writing them in the HumanML3D folder layout."""

from __future__ import annotations

import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from shared.motion.humanml3d import FPS, features_to_joints, joints_to_features
from shared.motion.normalization import ASSETS

from .actions import (
    ACTION_FUNCTIONS,
    ACTIONS,
    ALL_FAMILIES,
    DEFAULT_FAMILIES,
    RELATED_FAMILIES,
    Segment,
    family_actions,
    seated_state,
    stand_up,
)
from .captions import make_captions, tokens
from .curves import smooth
from .locomotion import initial_state
from .rig import Body, Tracks, make_body, make_neutral, tracks_to_joints

MIN_FRAMES, MAX_FRAMES = 40, 196  # HumanML3D loaders keep 40 <= T and crop to 196 frames (2–9.8 s at 20 fps)
SEQUENCE_LENGTHS = (1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3)  # ~50 % single actions, ~33 % pairs, ~17 % triples
_UPPER_BODY = ("pelvis", "spine", "head", "arms")


@dataclass
class SyntheticClip:
    """One generated motion.

    name:     file stem (unique within a seed).
    joints:   (T, 22, 3) float32, Y-up metres at 20 fps, SMPL joint order (floor at y = 0, starts at the origin
              facing +Z).
    features: (T-1, 263) float32 from `joints_to_features`.
    captions: varied descriptions, all consistent with `labels`.
    labels:   {"actions": [...], "segments": [per-action dicts], "segment_frames": [[start, end), ...],
              "directions": [...], "hand": "left"/"right"/"both"/None, "speed": peak m/s (0 when standing),
              "turn_degrees": signed heading change (+ = left, counter-clockwise seen from above)}.
    offsets:  (22, 3) the clip's rest offsets (its bone lengths).
    """

    name: str
    joints: np.ndarray
    features: np.ndarray
    captions: list[str]
    labels: dict
    offsets: np.ndarray = field(repr=False)


def _pick_action(rng: np.random.Generator, exclude: set[str], actions: dict = ACTIONS) -> str:
    """A family name drawn by weight from `actions` (a `family_actions` registry), leaving out `exclude`."""
    names = [n for n in actions if n not in exclude]
    weights = np.array([actions[n][0] for n in names])
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _share(budget: int, remaining_actions: int) -> int:
    """Frames one action may use while keeping ~2.5 s for each action still to come."""
    return max(budget - 50 * (remaining_actions - 1), budget // remaining_actions)


def _repeat_frame(tracks: Tracks, index: int, count: int) -> Tracks:
    return Tracks(**{k: np.repeat(v[index : index + 1 or None], count, 0) for k, v in vars(tracks).items()})


def _drop_first_frame(tracks: Tracks) -> Tracks:
    return Tracks(**{k: v[1:] for k, v in vars(tracks).items()})


def compose_clip(
    rng: np.random.Generator, body: Body, parts: int, families: tuple[str, ...] = DEFAULT_FAMILIES
) -> tuple[Tracks, list[dict], list[list[int]]]:
    """Tracks of 1–3 actions in a row with short standing pads (40–196 frames), their labels and frame spans.

    Actions are drawn from `families` (see actions.ALL_FAMILIES); a climb ends the clip (it ends up the stairs).
    """
    actions = family_actions(families)
    state = initial_state(body)
    if rng.random() < 0.04:  # now and then a clip begins seated and stands up
        state = seated_state(rng, body, state)
    pad_before, pad_after = int(rng.integers(0, 8)), int(rng.integers(1, 8))
    budget = MAX_FRAMES - pad_before - pad_after
    segments: list[Segment] = []
    for i in range(parts):
        segment = None
        if state.seated:
            segment = stand_up(rng, body, state, budget)
        else:
            exclude = {"idle"} if parts > 1 else set()
            if segments:
                previous = segments[-1].label["action"]
                exclude |= RELATED_FAMILIES.get(previous, {previous})
            allowed = _share(budget, parts - i) + (1 if segments else 0)
            for _ in range(4):
                segment = actions[_pick_action(rng, exclude, actions)][1](rng, body, state, allowed)
                if segment is not None:
                    break
        if segment is None:
            break
        if segments:  # its first frame repeats the previous segment's last frame
            segment.tracks = _drop_first_frame(segment.tracks)
        segments.append(segment)
        budget -= len(segment.tracks)
        state = segment.end
        if (i == 0 and budget < 40) or segment.label["action"] == "climb":
            break
    if not segments:
        segments.append(ACTIONS["idle"][1](rng, body, state, budget))
    return _assemble(segments, pad_before, pad_after)


def _assemble(segments: list[Segment], pad_before: int, pad_after: int) -> tuple[Tracks, list[dict], list[list[int]]]:
    """Segments (first frames already de-duplicated) between still pads, at least MIN_FRAMES long."""
    body_frames = sum(len(s.tracks) for s in segments)
    pad_after = max(pad_after, MIN_FRAMES - pad_before - body_frames)
    parts_tracks = [_repeat_frame(segments[0].tracks, 0, pad_before)]
    spans, start = [], pad_before
    for segment in segments:
        parts_tracks.append(segment.tracks)
        spans.append([start, start + len(segment.tracks)])
        start += len(segment.tracks)
    parts_tracks.append(_repeat_frame(segments[-1].tracks, -1, pad_after))
    tracks = Tracks.concatenate(parts_tracks)
    return tracks, [s.label for s in segments], spans


def _summarise(labels: list[dict], spans: list[list[int]], tracks: Tracks) -> dict:
    sided = ("wave", "raise_arms", "kick", "punch", "throw", "hop")
    hands = [lab.get("hand", lab.get("side")) for lab in labels if lab["action"] in sided]
    turn = float(np.degrees(tracks.heading[-1] - tracks.heading[0]))
    return {
        "actions": [lab["action"] for lab in labels],
        "segments": labels,
        "segment_frames": spans,
        "directions": [lab["direction"] for lab in labels if "direction" in lab],
        "hand": hands[0] if hands else None,
        "speed": max([lab.get("speed", 0.0) for lab in labels]),
        "turn_degrees": round(turn, 1),
    }


def _finish(rng: np.random.Generator, body: Body, name: str, composed, captions_per_clip: int) -> SyntheticClip:
    tracks, labels, spans = composed
    make_neutral(rng).fill(tracks)
    for part in _UPPER_BODY:  # blends any remaining kink between actions (σ = 1.5 frames)
        setattr(tracks, part, smooth(getattr(tracks, part), 1.5))
    joints = tracks_to_joints(body, tracks).astype(np.float32)
    return SyntheticClip(
        name=name,
        joints=joints,
        features=joints_to_features(joints),
        captions=make_captions(labels, rng, captions_per_clip),
        labels=_summarise(labels, spans, tracks),
        offsets=body.offsets.copy(),
    )


def generate_clip(
    seed: int, index: int, captions_per_clip: int = 6, families: tuple[str, ...] = DEFAULT_FAMILIES
) -> SyntheticClip:
    """Clip `index` of the set drawn from `seed` (independent of how many clips are generated).

    `families`: the action families to draw from (default: the first set's; ALL_FAMILIES, the embedded model's data,
    adds bow, punch, throw, hop, crawl, climb, jog and sprint).
    """
    rng = np.random.default_rng([seed, index])
    body = make_body(rng)
    parts = int(rng.choice(SEQUENCE_LENGTHS))
    composed = compose_clip(rng, body, parts, families)
    return _finish(rng, body, f"syn{seed}_{index:06d}", composed, captions_per_clip)


def make_clip(
    seed: int, plan: list[tuple[str, dict]], name: str = "planned", captions_per_clip: int = 6
) -> SyntheticClip:
    """A clip of the planned actions in order, e.g. [("walk", {"direction": "forward", "pace": "fast"}),
    ("turn", {"direction": "left", "degrees": 90}), ("wave", {"hand": "right"})]; names as in ACTION_FUNCTIONS.

    Raises ValueError when the plan does not fit in MAX_FRAMES (or "stand_up" does not follow "sit_down", or an
    action follows "climb", which ends up the stairs).
    """
    rng = np.random.default_rng([seed, 1_000_003])
    body = make_body(rng)
    state, budget, segments = initial_state(body), MAX_FRAMES - 4, []
    for i, (action, kwargs) in enumerate(plan):
        if segments and segments[-1].label["action"] == "climb":
            raise ValueError(f"{action} cannot follow climb (the clip ends up the stairs)")
        allowed = _share(budget, len(plan) - i) + (1 if segments else 0)
        for _ in range(8):  # variants are drawn at random: retry for one that fits
            segment = ACTION_FUNCTIONS[action](rng, body, state, allowed, **kwargs)
            if segment is not None:
                break
        if segment is None:
            raise ValueError(f"{action} {kwargs} does not fit in the remaining {budget} frames")
        if segments:
            segment.tracks = _drop_first_frame(segment.tracks)
        segments.append(segment)
        budget -= len(segment.tracks)
        state = segment.end
    return _finish(rng, body, name, _assemble(segments, 2, 2), captions_per_clip)


def generate_synthetic_set(
    seed: int,
    count: int,
    captions_per_clip: int = 6,
    start: int = 0,
    workers: int = 1,
    families: tuple[str, ...] = DEFAULT_FAMILIES,
) -> list[SyntheticClip]:
    """`count` clips (indices start..start+count-1), deterministic from `seed` whatever `workers` is.

    About 20 ms per clip on one core (3000 clips ≈ 1 min); `workers` > 1 spreads the clips over processes.
    `families` (default DEFAULT_FAMILIES, the first set, unchanged) chooses the action families drawn.
    """
    families = tuple(families)
    indices = range(start, start + count)
    if workers <= 1:
        return [generate_clip(seed, i, captions_per_clip, families) for i in indices]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        chunk = max(1, count // (4 * workers))
        task = partial(generate_clip, seed, captions_per_clip=captions_per_clip, families=families)
        return list(pool.map(task, indices, chunksize=chunk))


def write_humanml3d_layout(
    clips: list[SyntheticClip],
    folder: str | Path,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Path:
    """Write clips in the HumanML3D layout under `folder` and return it.

    new_joint_vecs/<name>.npy  (T-1, 263) float32 features.
    new_joints/<name>.npy      (T-1, 22, 3) float32 joints recovered from those features (`features_to_joints`),
                               as in the released dataset (target skeleton, canonical start, T-1 frames).
    texts/<name>.txt           one line per caption: `caption#tokens#0.0#0.0`, tokens `lemma/POS` from a small
                               closed-vocabulary tagger (captions.tokens); 0.0#0.0 = the caption covers the whole clip.
    train.txt, val.txt, test.txt  names, one per line: disjoint splits of a shuffle by `seed`; also all.txt and
                               train_val.txt.
    Mean.npy, Std.npy          the HumanML3D statistics (copied; models keep normalising with the real data's stats).
    """
    folder = Path(folder)
    for sub in ("new_joint_vecs", "new_joints", "texts"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for clip in clips:
        np.save(folder / "new_joint_vecs" / f"{clip.name}.npy", clip.features.astype(np.float32))
        np.save(folder / "new_joints" / f"{clip.name}.npy", features_to_joints(clip.features).astype(np.float32))
        lines = [f"{c}#{tokens(c)}#0.0#0.0" for c in clip.captions]
        (folder / "texts" / f"{clip.name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    names = [clip.name for clip in clips]
    order = np.random.default_rng(seed).permutation(len(names))
    fractions = np.asarray(split_fractions, dtype=np.float64)
    cuts = np.round(np.cumsum(fractions / fractions.sum())[:-1] * len(names)).astype(int)
    splits = dict(zip(("train", "val", "test"), np.split(order, cuts), strict=True))
    for split, indices in splits.items():
        _write_names(folder / f"{split}.txt", [names[i] for i in sorted(indices)])
    _write_names(folder / "all.txt", names)
    _write_names(folder / "train_val.txt", [names[i] for i in sorted(np.concatenate([splits["train"], splits["val"]]))])
    shutil.copyfile(ASSETS / "humanml3d_mean.npy", folder / "Mean.npy")
    shutil.copyfile(ASSETS / "humanml3d_std.npy", folder / "Std.npy")
    return folder


def _write_names(path: Path, names: list[str]) -> None:
    path.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")


__all__ = [
    "ALL_FAMILIES",
    "DEFAULT_FAMILIES",
    "FPS",
    "SyntheticClip",
    "compose_clip",
    "generate_clip",
    "generate_synthetic_set",
    "make_clip",
    "write_humanml3d_layout",
]
