"""Shots: prompt segments of any length (up to a minute) as one continuous motion that passes waypoints, follows
paths and reaches targets.

The shot is cut into windows, one prompt each (a long segment takes several), each starting with the last
`OVERLAP_FRAMES` frames of the motion so far (kept as they are). Window w is sampled from its segment's text. The
first window of a segment decodes its new frames only: the prompt's motion from its own start, as `generate` makes it
(a start that the frames before were refined into lost the action: a circle walked as a quarter turn, a backwards walk
as a turn). A window that continues its segment decodes the known frames too, and its latent is refined so that they
equal the motion so far (the known-frame mask of text-guided in-betweening): a long walk carries on in step. Where a
window holds constraints its single VAE latent is refined by gradient descent through the decoder so that it stays
near its sample (the text's action), its feet do not slide more where they are planted, and the constraints that
fall inside it are met: the pelvis path is recovered from the 263-dim root velocities continuing from where the shot
stands at the window's first frame, so waypoints and paths act on the same accumulated trajectory the result has. A
waypoint after the window pulls its end within reach of it. The difference in value and velocity at the last known
frame is faded out over the next `FADE_FRAMES` frames (inside the loss, so the constraints are met by the motion
that is returned). All candidates run as one batch. Last, the 0.7 s either side of each join are smoothed for least
jerk (`shared.motion.shot_math.smooth_joins`): the root still ends where it ended, and the frames of reach targets
and of waypoints that must be arrived at are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch

from backend.model.inputs import request_generator
from backend.model.motiongpt3 import MotionGPT3
from backend.model.tokenizer import tokenize_batch
from shared.motion.shot_math import DEFAULT_JOIN_SMOOTHING, JoinSmoothing, path_positions, smooth_joins, waypoint_window
from shared.shot import SHOT_FPS, Shot, check_shot

from .inference import NO_CONTROL, TaskControl, TaskError, text_to_motion_prompt
from .shot_kinematics import CONTACTS, RootStart, proportioned, world_joints

OVERLAP_FRAMES = 20  # frames of the motion so far that a window starts with (known)
FADE_FRAMES = 20  # the known frames' residual fades out over this many frames after them
PATH_WINDOW_FRAMES = 80  # new frames per window while a path runs
JOIN_FRAMES = 12  # frames after the known ones whose jerk the `join` term holds down
TRANSITION_FRAMES = 20  # after the known frames, the pull towards the window's sample grows over this many frames
LOOKAHEAD_SPEED = 0.8  # m/s: a window's end must be within this pace of the next waypoint
FEET = (7, 10, 8, 11)  # SMPL joints of the contact labels 259..262
RAW_TARGET_SHARE = 0.1  # weight of a target's distance to the features' own joint, beside the rest-proportioned one


@dataclass(frozen=True)
class ShotWeights:
    """Terms of the refinement loss (normalised features for the first three, metres for the rest). Tuned with
    `motiongpt3 bench shot` on the demo model: a sample weight of 3 (against 0.3) lifted the paraphrase-suite prompts
    passing their checks inside a shot from 14 % to 20 % (alone: 23 %); the constraint weights were doubled with it."""

    known: float = 1.0  # a continuing window's first frames equal the motion so far
    sample: float = 3.0  # the other frames stay near the window's sample (the text's action)
    prior: float = 1e-3  # the latent stays near the sampled one
    waypoint: float = 8.0
    path: float = 20.0
    target: float = 16.0
    facing: float = 0.5
    lookahead: float = 1.0
    feet: float = 1.0  # planted feet faster than in the sample: (m/s)^2 of the excess
    along: float = 4.0  # travelling more sideways or backwards than the sample: (m/s)^2
    join: float = 10.0  # jerk (third differences of the normalised features) just after the known frames
    pace: float = 1.0  # pelvis speed other than the sample's (the text's pace; the demo model's feet slide with it)


@dataclass(frozen=True)
class Window:
    """Shot frames [start, end): the first `known` frames continue the motion so far; `text` from `segment`."""

    start: int
    end: int
    known: int
    text: str
    segment: int

    @property
    def frames(self) -> int:
        return self.end - self.start


def plan_windows(shot: Shot, max_frames: int, overlap: int = OVERLAP_FRAMES) -> list[Window]:
    """Windows covering the shot, every window after the first starting with `overlap` frames of the one before: a
    segment of at most `max_frames` frames in one window (its first window decodes the new frames only), a longer one
    in even chunks of at most `max_frames - overlap` new frames (a continuing window decodes the known frames too);
    `PATH_WINDOW_FRAMES` where a path runs (one latent bends a walk about once)."""
    windows: list[Window] = []
    cursor = 0
    for index, (segment, frames) in enumerate(zip(shot.segments, shot.segment_frames, strict=True)):
        end = cursor + frames
        room, opening = max_frames - overlap, max_frames
        if any(p.start * SHOT_FPS < end and p.end * SHOT_FPS > cursor for p in shot.paths):
            room = opening = min(room, PATH_WINDOW_FRAMES)
        chunks = 1 if frames <= opening else -(-frames // room)
        bounds = np.rint(np.linspace(cursor, end, chunks + 1)).astype(int)
        for lo, hi in pairwise(bounds):
            known = min(overlap, int(lo))
            if hi > lo:
                windows.append(Window(int(lo) - known, int(hi), known, segment.text, index))
        cursor = end
    return windows


# ------------------------------------------------------------------------------------------------ constraints


@dataclass(frozen=True)
class _WindowGoals:
    """A window's share of the shot's constraints as tensors over window frames."""

    # waypoints: the window frames it may be passed on (one when it must arrive then), the point [2], and the
    # squared distance [B] it was passed at before the window (None: its time range starts in the window)
    point_frames: list[tuple[list[int], torch.Tensor, torch.Tensor | None]]
    facings: list[tuple[int, float]]  # (frame, radians)
    path_frames: torch.Tensor  # [P] window frames on a path
    path_points: torch.Tensor  # [P, 2] where the even pace puts the pelvis then
    targets: list[tuple[int, int, torch.Tensor]]  # (frame, joint, point [3])
    ahead: tuple[float, torch.Tensor] | None  # (seconds after the window's last frame, point [2])


def _window_goals(shot: Shot, window: Window, path_so_far: torch.Tensor, device: torch.device) -> _WindowGoals:
    """`path_so_far` [B, window.start, 2]: the pelvis path of the motion before the window."""
    total_frames = shot.frames
    first_new, end = window.start + window.known, window.end
    last = total_frames - 1
    frame = lambda t: int(min(max(round(t * SHOT_FPS), 0), last))  # noqa: E731
    times = [w.time for w in shot.waypoints]
    arrive = [w.arrive for w in shot.waypoints]
    points, facings = [], []
    ahead: list[tuple[float, np.ndarray]] = []
    for i, waypoint in enumerate(shot.waypoints):
        lo, hi = (frame(t) for t in waypoint_window(times, arrive, i, last / SHOT_FPS))
        point = np.asarray(waypoint.position, dtype=np.float32)
        if first_new <= hi < end:  # the window where its time range ends
            frames = [f - window.start for f in range(max(lo, window.start), hi + 1)]
            target = torch.as_tensor(point, device=device)
            before = None
            if lo < window.start:
                before = ((path_so_far[:, lo : window.start] - target) ** 2).sum(-1).min(dim=1).values
            points.append((frames, target, before))
            if waypoint.facing is not None:
                facings.append((hi - window.start, float(np.deg2rad(waypoint.facing))))
        elif hi >= end:
            ahead.append(((hi - (end - 1)) / SHOT_FPS, point))
    path_frames, path_points = [], []
    for path in shot.paths:
        frames = np.arange(max(frame(path.start), first_new), min(frame(path.end) + 1, end))
        if len(frames):
            path_frames.append(frames - window.start)
            path_points.append(path_positions(path.array(), path.start, path.end, frames / SHOT_FPS))
        elif frame(path.start) >= end:
            ahead.append(((frame(path.start) - (end - 1)) / SHOT_FPS, path.array()[0]))
    targets = []
    for target in shot.targets:
        f = frame(target.time)
        if first_new <= f < end:
            targets.append((f - window.start, target.joint_index, torch.tensor(target.position, device=device)))
    nearest = min(ahead, key=lambda a: a[0]) if ahead else None
    return _WindowGoals(
        points,
        facings,
        torch.as_tensor(np.concatenate(path_frames) if path_frames else np.zeros(0, int), device=device),
        torch.as_tensor(
            np.concatenate(path_points) if path_points else np.zeros((0, 2)), dtype=torch.float32, device=device
        ),
        targets,
        None if nearest is None else (nearest[0], torch.as_tensor(nearest[1], dtype=torch.float32, device=device)),
    )


def _has_goals(goals: _WindowGoals) -> bool:
    return bool(goals.point_frames or goals.facings or len(goals.path_frames) or goals.targets or goals.ahead)


# ------------------------------------------------------------------------------------------------ refinement


def _fade_weights(frames: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Cubic Hermite weights over the `frames` frames after the last known one (s = i / FADE_FRAMES, zero beyond):
    h00 (the residual: 1 -> 0) and FADE_FRAMES * h10 (the velocity residual: slope 1 -> 0), both with zero slope and
    value at the fade's end."""
    s = torch.clamp(torch.arange(1, frames + 1, device=device) / FADE_FRAMES, max=1.0)
    return 2 * s**3 - 3 * s**2 + 1, FADE_FRAMES * (s**3 - 2 * s**2 + s)


@dataclass(frozen=True)
class _Decoded:
    """A window's decoded new frames [B, N, 263], the decoded frame before them [B, 263] and that frame's step from
    the one before it [B, 263] (normalised features)."""

    new: torch.Tensor
    before: torch.Tensor
    step: torch.Tensor


def _split(decoded: torch.Tensor, known: int, new: int, opens: bool) -> _Decoded:
    """decoded [B, L, 263] -> its new frames and the frame before them: after the `known` decoded frames in a window
    that continues its segment; the decoded motion carried back one frame in a window that opens a segment (or the
    shot), which decodes the new frames only."""
    if opens:
        step = decoded[:, 1] - decoded[:, 0]
        return _Decoded(decoded[:, :new], decoded[:, 0] - step, step)
    k = max(known, 2)  # one known frame: the step of the first two decoded ones
    return _Decoded(decoded[:, known : known + new], decoded[:, known - 1], decoded[:, k - 1] - decoded[:, k - 2])


def _assemble(window: _Decoded, known: torch.Tensor | None, fade: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Normalised window [B, K + N, 263]: the `known` frames [B, K, 263], then the decoded new frames with the
    difference in value and in velocity between the last known frame and the decoded frame before them faded out (C1:
    no kink where the known frames end; a value-only linear fade left a 2000 m/s^3 jerk spike in the wrist of a wave
    following a walk)."""
    if known is None:
        return window.new
    residual = known[:, -1] - window.before  # [B, 263]
    slope = (known[:, -1] - known[:, -2] if known.shape[1] > 1 else window.step) - window.step
    value, velocity = (w[: window.new.shape[1], None] for w in fade)
    return torch.cat([known, window.new + value * residual[:, None] + velocity * slope[:, None]], dim=1)


def _constraint_loss(
    raw: torch.Tensor,
    start: RootStart,
    goals: _WindowGoals,
    weights: ShotWeights,
    contacts: torch.Tensor,
    sample_feet: torch.Tensor,
) -> torch.Tensor:
    """Constraint terms over raw window features [B, T, 263] starting at `start`; `contacts` [B, T, 4] planted."""
    joints, path, facing = world_joints(raw, start)
    loss = raw.new_zeros(())
    for frames, point, before in goals.point_frames:
        distance = ((path[:, frames] - point) ** 2).sum(-1)  # [B, F]
        if before is not None:
            distance = torch.cat([distance, before[:, None]], dim=1)
        nearest = -0.01 * torch.logsumexp(-distance / 0.01, dim=1) if distance.shape[1] > 1 else distance[:, 0]
        loss = loss + weights.waypoint * nearest.mean()
    for frame, angle in goals.facings:
        loss = loss + weights.facing * (1.0 - torch.cos(facing[:, frame] - angle)).mean()
    if len(goals.path_frames):
        loss = loss + weights.path * ((path[:, goals.path_frames] - goals.path_points) ** 2).sum(-1).mean()
    for frame, joint, point in goals.targets:
        # Where a skeleton of the rest proportions puts the joint (the SMPL-22 armature, the BVH output): a generated
        # pose's bone lengths vary by centimetres, which add up along an arm; the features' own position weighs less.
        rig = proportioned(joints[:, frame])[:, joint]
        raw_error = ((joints[:, frame, joint] - point) ** 2).sum(-1)
        loss = loss + weights.target * (((rig - point) ** 2).sum(-1) + RAW_TARGET_SHARE * raw_error).mean()
    if goals.ahead is not None:
        seconds, point = goals.ahead
        to_point = point - path[:, -1]  # [B, 2]
        gap = torch.linalg.vector_norm(to_point, dim=-1) - LOOKAHEAD_SPEED * seconds
        loss = loss + weights.lookahead * torch.relu(gap).square().mean()
        # ... and face it: the next segment then sets off towards it (a U-turn is more than one window can learn)
        bearing = torch.atan2(to_point[:, 0], to_point[:, 1])
        far = torch.clamp(torch.linalg.vector_norm(to_point, dim=-1) - 0.5, min=0.0, max=1.0)
        loss = loss + weights.facing * (far * (1.0 - torch.cos(facing[:, -1] - bearing))).mean()
    feet = _planted_feet_speed(raw, contacts, joints)
    loss = loss + weights.feet * torch.relu(feet - sample_feet).square().mean()
    return loss


def _travel(raw: torch.Tensor) -> torch.Tensor:
    """Raw features [B, T, 263] -> the pelvis velocity in the heading frame (sideways, forward) in m/s, averaged over
    half a second [B, T', 2] (a walk's sway cancels out)."""
    velocity = raw[..., 1:3].transpose(1, 2) * SHOT_FPS  # [B, 2, T]
    window = min(10, velocity.shape[-1])
    return torch.nn.functional.avg_pool1d(velocity, window, stride=1).transpose(1, 2)


def _off_travel(travel: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """How much more the motion travels sideways or backwards than its sample did ((m/s)^2; `_travel` of both):
    steering must turn the body, not walk it crabwise (the character faces along its motion)."""
    sideways = (travel[..., 0] - sample[..., 0]) ** 2
    backwards = torch.relu(-travel[..., 1] - torch.relu(-sample[..., 1])) ** 2
    return (sideways + backwards).mean()


def _planted_feet_speed(raw: torch.Tensor, contacts: torch.Tensor, joints: torch.Tensor | None = None) -> torch.Tensor:
    """Mean horizontal speed (m/s) of the feet over their planted frames, per row [B] (rotation-invariant)."""
    if joints is None:
        joints, _, _ = world_joints(raw, _origin(len(raw), raw.device))
    feet = joints[:, :, list(FEET)][..., [0, 2]]  # [B, T, 4, 2]
    speed = torch.sqrt(((feet[:, 1:] - feet[:, :-1]) ** 2).sum(-1) + 1e-8) * SHOT_FPS  # [B, T-1, 4]
    planted = contacts[:, :-1]
    return (speed * planted).sum((1, 2)) / planted.sum((1, 2)).clamp(min=1.0)


def _refine_window(
    model: MotionGPT3,
    sampled: torch.Tensor,
    frames: int,
    known: torch.Tensor | None,
    start: RootStart,
    goals: _WindowGoals,
    weights: ShotWeights,
    iterations: int,
    report: Callable[[], None],
    control: TaskControl,
    opens: bool,
) -> torch.Tensor:
    """Refine the sampled latents [B, D] of one window -> its normalised features [B, frames, 263] (assembled).
    `opens`: the window opens a segment and decodes its new frames only (see the module's docstring)."""
    batch = len(sampled)
    k = 0 if known is None else known.shape[1]
    new = frames - k
    opens = opens or known is None
    decode_frames = max(new if opens else frames, model.config.min_frames)
    lengths = torch.full((batch,), decode_frames, dtype=torch.long, device=model.device)
    fade = _fade_weights(new, model.device)
    with torch.no_grad():
        first = _split(model.decode_latents(sampled, lengths), k, new, opens)
        sample = model.denormalize(_assemble(first, known, fade))
        contacts = (sample[..., CONTACTS] > 0.5).float()
        sample_feet = _planted_feet_speed(sample, contacts)
        sample_travel = _travel(sample[:, k:])
    # Right after the known frames the window may leave its sample to make the transition; later it keeps to it.
    ramp = torch.clamp(torch.arange(1, new + 1, device=model.device) / TRANSITION_FRAMES, max=1.0)
    if known is None:
        ramp = torch.ones_like(ramp)
    constrained = _has_goals(goals)
    if iterations <= 0 or (opens and not constrained):
        return _assemble(first, known, fade)
    latent = sampled.clone().requires_grad_(True)

    def objective() -> torch.Tensor:
        control.check("shot refinement")
        decoded = model.decode_latents(latent, lengths)
        window = _split(decoded, k, new, opens)
        loss = weights.prior * ((latent - sampled) ** 2).mean()
        if not opens:
            loss = loss + weights.known * ((decoded[:, :k] - known) ** 2).mean()
        loss = loss + weights.sample * (ramp[None, :, None] * (window.new - first.new) ** 2).mean()
        assembled = _assemble(window, known, fade)
        if known is not None and weights.join > 0:  # no sudden start where the window leaves the known frames
            near = assembled[:, max(k - 4, 0) : k + JOIN_FRAMES]
            loss = loss + weights.join * (torch.diff(near, n=3, dim=1) ** 2).mean()
        if constrained:
            raw = model.denormalize(assembled)
            loss = loss + _constraint_loss(raw, start, goals, weights, contacts, sample_feet)
            travel = _travel(raw[:, k:])
            loss = loss + weights.along * _off_travel(travel, sample_travel)
            pace = torch.linalg.vector_norm(travel, dim=-1) - torch.linalg.vector_norm(sample_travel, dim=-1)
            loss = loss + weights.pace * (ramp[: pace.shape[1]] * pace**2).mean()
        return loss

    # L-BFGS with a strong-Wolfe line search: the latent has a few dozen dimensions and the loss is a sum of
    # squares, where it converges in ~20 evaluations (Adam at lr 0.05 needed 60 and still missed waypoints by 15 cm).
    optimizer = torch.optim.LBFGS(
        [latent], lr=1.0, max_iter=iterations, max_eval=iterations, history_size=10, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = objective()
        loss.backward()
        report()
        return loss

    with torch.enable_grad(), _frozen(model):
        optimizer.step(closure)
    with torch.no_grad():
        return _assemble(_split(model.decode_latents(latent, lengths), k, new, opens), known, fade)


@contextmanager
def _frozen(model: MotionGPT3) -> Iterator[None]:
    """Only the latent is optimised: the weights need no gradients (the backward pass then skips them: ~2x faster)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _sample_candidates(
    model: MotionGPT3,
    text: str,
    seed: int,
    candidates: int,
    guidance: float | None,
    steps: int | None,
    control: TaskControl,
) -> torch.Tensor:
    """VAE latents [C, D] sampled from `text`: one diffusion chain per candidate, each with the generator of
    (seed, k), so that candidate k is the same numbers whatever the count (a batched chain differs in the last bits,
    which the line search that follows would amplify). Candidate 0 is what `generate` samples with the seed."""
    guidance = model.config.diffusion.guidance_scale if guidance is None else float(guidance)
    with model.autocast():
        tokens = tokenize_batch([text_to_motion_prompt(model, text)], model.config.max_prompt_tokens, "right")
        control.check("the backbone forward")
        condition = model.motion_condition(tokens, None)  # [1, 4, hidden]
        rows = [
            model.sample_latents(condition, guidance, steps, [request_generator(seed, k)], None, control.should_cancel)
            for k in range(candidates)
        ]
    return model.from_lm_space(torch.cat(rows).float())


def _window_seed(seed: int, index: int) -> int:
    """Window 0 samples with the request's seed (the first segment is what `generate` gives); later windows with
    seeds derived from it."""
    return (int(seed) + 7919 * index) % 2**32


@torch.no_grad()
def shot_to_motion(
    model: MotionGPT3,
    shot: Shot,
    seed: int = 0,
    candidates: int = 1,
    guidance: float | None = None,
    steps: int | None = None,
    refine_steps: int = 20,
    weights: ShotWeights = ShotWeights(),
    join_smoothing: JoinSmoothing = DEFAULT_JOIN_SMOOTHING,
    control: TaskControl = NO_CONTROL,
) -> list[np.ndarray]:
    """A shot -> `candidates` continuous motions of (shot.frames, 263) raw features at 20 fps."""
    check_shot(shot)
    if candidates < 1:
        raise TaskError(f"candidates: must be >= 1, got {candidates}")
    windows = plan_windows(shot, model.config.max_frames)
    device = model.device
    per_window = 1 + candidates * refine_steps
    total_steps = len(windows) * per_window
    done, cap = [0], [0]
    progress = control.stage("shot")

    def report() -> None:  # one step per evaluation, within the window's share (a line search may run over)
        if done[0] < cap[0]:
            done[0] += 1
            if progress is not None:
                progress(done[0], total_steps)

    motion = torch.zeros(candidates, shot.frames, model.config.vae.nfeats, device=device)  # normalised
    origin = _origin(candidates, device)
    for index, window in enumerate(windows):
        cap[0] = (index + 1) * per_window
        window_seed = _window_seed(seed, index)
        opens = index == 0 or windows[index - 1].segment != window.segment
        sampled = _sample_candidates(model, window.text, window_seed, candidates, guidance, steps, control)
        report()
        _, path_so_far, facing_so_far = world_joints(model.denormalize(motion[:, : window.start + 1]), origin)
        # Each candidate is refined on its own (its own line search): candidate k of a seed is the same motion
        # whatever the number of candidates, as with `generate`.
        for c in range(candidates):
            row = slice(c, c + 1)
            known = motion[row, window.start : window.start + window.known] if window.known else None
            start = RootStart(path_so_far[row, -1], facing_so_far[row, -1])
            goals = _window_goals(shot, window, path_so_far[row, :-1], device)
            motion[row, window.start : window.end] = _refine_window(
                model, sampled[row], window.frames, known, start, goals, weights, refine_steps, report, control, opens
            )
        if done[0] != cap[0]:  # the line search may stop before its budget
            done[0] = cap[0]
            if progress is not None:
                progress(done[0], total_steps)
    raw = model.denormalize(motion).float().cpu().numpy()
    joins = [w.start + w.known for w in windows if w.known]
    pinned = [shot.frame_of(t.time) for t in shot.targets]
    pinned += [shot.frame_of(w.time) for w in shot.waypoints if w.arrive]
    return [smooth_joins(raw[c], joins, join_smoothing, pinned) for c in range(candidates)]


def _origin(batch: int, device: torch.device) -> RootStart:
    return RootStart(torch.zeros(batch, 2, device=device), torch.zeros(batch, device=device))
