"""The four MotionGPT3 tasks as batched functions over raw 263-dim HumanML3D features at 20 fps.

Fixes the upstream demo's gaps: the requested length is honoured (20-196 frames natively; shorter requests are
decoded at 20 frames and trimmed; longer ones are refused with a clear error), each request has its own seed
(the same request gives the same motion whatever else is in the batch), `candidates=N` returns N motions in one
batched call, in-betweening accepts any boolean mask of known frames, and every task reports progress and
checks for cancellation at least once per decoding / diffusion / refinement step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from backend.model.config import EOM_ID, EOS_ID, SOM_ID, MotionGPT3Config
from backend.model.diffusion_head import GenerationCancelled
from backend.model.inputs import TaskError, check_known_mask, request_generator
from backend.model.inputs import check_clip as _check_clip
from backend.model.motiongpt3 import MotionGPT3
from backend.model.tokenizer import (
    EOS,
    decode_ids,
    masked_motion_span,
    motion_input_sequence,
    motion_output_sequence,
    token_ids,
    tokenize_batch,
)

# Prompt wording (ours). The released model was trained on raw captions for text-to-motion and on short task
# prefixes for the motion-input tasks; a newline separates the prompt from the answer (spec §2.3, §2.5).
PREDICT_PREFIX = "Predict motion: "
INBETWEEN_PREFIX = "Complete the masked motion: "
CAPTION_PREFIX = "Generate text: "
ANSWER_SEPARATOR = " \n "  # before an output motion (single-forward tasks)
CAPTION_SEPARATOR = " \n"  # before generated text
# In-betweening with a text: the model never saw text in in-between prompts, so the fill is sampled from the
# text-to-motion prompt and refined to the keys. Measured on the demo model (idle / walking keys on 10 + 10 of 120
# frames, "a person jumps up" / "a person waves with the right hand", 5 seeds): the key-only refinement pulls the
# single clip latent back to the keys' motion (pelvis lift 1-6 cm, right wrist never above the shoulder); this
# weight on staying near the sampled motion in the gaps keeps the action (lift 0.20-0.33 m, wrist up 32-62 % of
# the gap) while the keys stay exact.
TEXT_GAP_WEIGHT = 0.1


@dataclass(frozen=True)
class TaskControl:
    """Progress reporting and cancellation for one task call.

    progress(stage, done, total) with stage in {"diffusion", "decoding", "refine"}; should_cancel() is consulted
    before every network step and a True answer raises GenerationCancelled.
    """

    progress: Callable[[str, int, int], None] | None = None
    should_cancel: Callable[[], bool] | None = None

    def stage(self, name: str) -> Callable[[int, int], None] | None:
        return None if self.progress is None else (lambda done, total: self.progress(name, done, total))

    def check(self, what: str) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise GenerationCancelled(f"cancelled during {what}")


NO_CONTROL = TaskControl()


def _expand(value: int | Sequence[int], count: int, name: str) -> list[int]:
    values = [int(value)] * count if isinstance(value, int | np.integer) else [int(v) for v in value]
    if len(values) != count:
        raise TaskError(f"{name}: expected {count} values, got {len(values)}")
    return values


def _check_frames(model: MotionGPT3, frames: int, name: str = "frames") -> int:
    """Frames to decode for a request of `frames` (decoded at least at min_frames, then trimmed)."""
    limit = model.config.max_frames
    if not 1 <= frames <= limit:
        raise TaskError(f"{name}: {frames} is outside 1..{limit} frames ({limit / model.config.fps:g} s at 20 fps)")
    return max(frames, model.config.min_frames)


def text_token_budget(config: MotionGPT3Config) -> int:
    """Tokens a user's text may take: the model's prompt length minus the text-to-motion template around it (the
    same template carries an in-between's text). Tokens add up: a trimmed text ends in a non-space, so the
    template's leading white space never merges with it (the GPT-2 pre-tokenizer splits them)."""
    template = ANSWER_SEPARATOR + motion_output_sequence(config.backbone.holders_per_motion) + EOS
    return config.max_prompt_tokens - len(token_ids(template))


def text_to_motion_prompt(model: MotionGPT3, text: str) -> str:
    """A caption followed by the output motion the model is asked to fill (the training format, spec §2.3)."""
    holders = model.config.backbone.holders_per_motion
    return text + ANSWER_SEPARATOR + motion_output_sequence(holders) + EOS


def inbetween_prompt(model: MotionGPT3) -> str:
    """The in-betweening prompt: head motion, masked span, tail motion, then the output motion (no text)."""
    holders = model.config.backbone.holders_per_motion
    masked = motion_input_sequence(holders) + masked_motion_span(holders) + motion_input_sequence(holders)
    return INBETWEEN_PREFIX + masked + ANSWER_SEPARATOR + motion_output_sequence(holders) + EOS


def caption_prompt(model: MotionGPT3) -> str:
    """The captioning prompt around one input motion (its latent fills the holders)."""
    return CAPTION_PREFIX + motion_input_sequence(model.config.backbone.holders_per_motion) + CAPTION_SEPARATOR


def _sample(
    model: MotionGPT3,
    prompts: list[str],
    input_latents: torch.Tensor | None,
    seeds: list[int],
    candidates: int,
    guidance: float | None,
    steps: int | None,
    control: TaskControl,
) -> torch.Tensor:
    """Prompts ending in an output motion (their input latents in reading order) -> VAE latents [P·C, D] (float32,
    unscaled) for every (prompt i, candidate k), in that order.

    The backbone runs once per prompt and its condition is shared by the prompt's candidates (the forward is
    deterministic); all candidates of all prompts are then sampled in one batched diffusion chain.
    """
    guidance = model.config.diffusion.guidance_scale if guidance is None else float(guidance)
    tokens = tokenize_batch(prompts, model.config.max_prompt_tokens, padding_side="right")
    control.check("the backbone forward")
    condition = model.motion_condition(tokens, input_latents).repeat_interleave(candidates, 0)  # [P·C, 4, hidden]
    generators = [request_generator(seed, k) for seed in seeds for k in range(candidates)]
    latents = model.sample_latents(
        condition, guidance, steps, generators, control.stage("diffusion"), control.should_cancel
    )
    return model.from_lm_space(latents.float())


def _generate(
    model: MotionGPT3,
    prompts: list[str],
    input_latents: torch.Tensor | None,
    decode_frames: list[int],
    seeds: list[int],
    candidates: int,
    guidance: float | None,
    steps: int | None,
    control: TaskControl,
) -> list[torch.Tensor]:
    """`_sample`, decoded: normalised features [decode_frames[i], 263] for every (prompt i, candidate k)."""
    latents = _sample(model, prompts, input_latents, seeds, candidates, guidance, steps, control)
    decode_frames = [n for n in decode_frames for _ in range(candidates)]
    lengths = torch.tensor(decode_frames, dtype=torch.long, device=model.device)
    decoded = model.decode_latents(latents, lengths)
    return [decoded[i, :n] for i, n in enumerate(decode_frames)]


@torch.no_grad()
def text_to_motion(
    model: MotionGPT3,
    texts: Sequence[str],
    frames: int | Sequence[int],
    seed: int | Sequence[int] = 0,
    candidates: int = 1,
    guidance: float | None = None,
    steps: int | None = None,
    control: TaskControl = NO_CONTROL,
) -> list[list[np.ndarray]]:
    """Texts -> for each text, `candidates` motions of exactly `frames` frames: [text][candidate] (frames, 263)."""
    texts = [str(t).strip() for t in texts]
    if not texts or any(not t for t in texts):
        raise TaskError("texts: every prompt must be a non-empty string")
    if candidates < 1:
        raise TaskError(f"candidates: must be >= 1, got {candidates}")
    wanted = _expand(frames, len(texts), "frames")
    seeds = _expand(seed, len(texts), "seed")
    decode = [_check_frames(model, n) for n in wanted]
    prompts = [text_to_motion_prompt(model, text) for text in texts]
    with model.autocast():
        outputs = _generate(model, prompts, None, decode, seeds, candidates, guidance, steps, control)
    result: list[list[np.ndarray]] = [[] for _ in texts]
    for row, features in enumerate(outputs):
        i = row // candidates
        result[i].append(model.denormalize(features.float())[: wanted[i]].cpu().numpy())
    return result


def _input_latents(
    model: MotionGPT3, clips: Sequence[np.ndarray], sample: bool, seeds: Sequence[tuple[int, int]] | None
) -> torch.Tensor:
    """Raw clips -> LM-space latents [N, D] (posterior mean, or samples drawn from per-clip generators)."""
    batch, lengths = model.pad_features(clips)
    generators = [request_generator(s, k) for s, k in seeds] if sample and seeds is not None else None
    return model.to_lm_space(model.encode_latents(batch, lengths, sample=sample, generator=generators))


@torch.no_grad()
def motion_to_text(
    model: MotionGPT3,
    features_list: Sequence[np.ndarray],
    do_sample: bool = False,
    posterior_sample: bool = False,
    max_new_tokens: int | None = None,
    seed: int = 0,
    control: TaskControl = NO_CONTROL,
) -> list[str]:
    """Captions for raw feature clips; fully deterministic with both sampling flags False (greedy, latent mean)."""
    clips = [_check_clip(f, f"features[{i}]", min_frames=2) for i, f in enumerate(features_list)]
    if not clips:
        raise TaskError("features_list: no clips given")
    max_new = model.config.caption_max_new_tokens if max_new_tokens is None else int(max_new_tokens)
    prompts = [caption_prompt(model)] * len(clips)
    with model.autocast():
        latents = _input_latents(model, clips, posterior_sample, [(seed, i) for i in range(len(clips))])
        tokens = tokenize_batch(prompts, model.config.max_prompt_tokens, padding_side="left")
        generated = _greedy_or_sampled_decode(model, tokens, latents, max_new, do_sample, seed, control)
    return [caption_text(row) for row in generated]


def caption_text(tokens: list[int]) -> str:
    """Generated token ids (without EOS) -> the caption: special tokens dropped, one line, quotes stripped."""
    text = decode_ids(tokens)
    return text.replace("\n", " ").strip().strip('"').strip()


def next_token_logits(model: MotionGPT3, hidden_last: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """The last position's text logits [B, text_vocab] (float32) after the decoding rules of spec §3.2: the
    repetition penalty over the generated tokens [B, n] only, and <start_of_motion> / <end_of_motion> banned."""
    logits = model.lm.text_logits(hidden_last).float()
    if generated.shape[1]:
        penalty = model.config.repetition_penalty
        seen = torch.gather(logits, 1, generated)
        logits = logits.scatter(1, generated, torch.where(seen > 0, seen / penalty, seen * penalty))
    logits[:, [SOM_ID, EOM_ID]] = -torch.inf
    return logits


def _greedy_or_sampled_decode(
    model: MotionGPT3,
    tokens,
    latents: torch.Tensor,
    max_new: int,
    do_sample: bool,
    seed: int,
    control: TaskControl,
) -> list[list[int]]:
    """Autoregressive text decoding with the KV cache; returns each row's tokens up to (without) EOS."""
    device = model.device
    embeds, type_ids = model.embed_prompt(tokens, latents)
    mask = tokens.attention_mask.to(device)
    positions = tokens.position_ids.to(device)
    hidden, cache = model.lm(embeds, type_ids, mask, positions, use_cache=True)
    batch = len(mask)
    generated = torch.zeros((batch, 0), dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    generators = [request_generator(seed, 1000 + i) for i in range(batch)] if do_sample else None
    progress = control.stage("decoding")
    for step in range(max_new):
        control.check("caption decoding")
        logits = next_token_logits(model, hidden[:, -1], generated)  # [B, text_vocab]
        if do_sample:
            top = torch.topk(logits, 50, dim=-1)
            probs = torch.softmax(top.values, dim=-1).cpu()
            choice = torch.stack([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)])
            next_token = top.indices.gather(1, choice.to(device))[:, 0]
        else:
            next_token = logits.argmax(-1)
        next_token = torch.where(finished, torch.full_like(next_token, EOS_ID), next_token)
        generated = torch.cat([generated, next_token[:, None]], dim=1)
        finished |= next_token == EOS_ID
        if progress is not None:
            progress(step + 1, max_new)
        if bool(finished.all()):
            break
        mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=device)], dim=1)
        positions = positions[:, -1:] + 1
        step_embeds = model.lm.embed_tokens(next_token[:, None], torch.zeros_like(next_token[:, None]))
        hidden, cache = model.lm(
            step_embeds, torch.zeros_like(next_token[:, None]), mask, positions, past_key_values=cache, use_cache=True
        )
    rows = []
    for row in generated.tolist():
        rows.append(row[: row.index(EOS_ID)] if EOS_ID in row else row)
    return rows


@torch.no_grad()
def predict(
    model: MotionGPT3,
    features: np.ndarray,
    frames: int,
    seed: int = 0,
    candidates: int = 1,
    guidance: float | None = None,
    steps: int | None = None,
    control: TaskControl = NO_CONTROL,
) -> list[np.ndarray]:
    """Continue a raw clip by `frames` frames: `candidates` clips of (len(features) + frames, 263), prefix kept."""
    prefix = _check_clip(features, "features", min_frames=2)
    decode = _check_frames(model, frames, "frames (continuation)")
    holders = model.config.backbone.holders_per_motion
    prompt = PREDICT_PREFIX + motion_input_sequence(holders) + ANSWER_SEPARATOR + motion_output_sequence(holders) + EOS
    with model.autocast():
        latent = _input_latents(model, [prefix], sample=False, seeds=None)
        outputs = _generate(model, [prompt], latent, [decode], [seed], candidates, guidance, steps, control)
    return [np.concatenate([prefix, model.denormalize(o.float())[:frames].cpu().numpy()]) for o in outputs]


def _known_blocks(known: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True in a boolean mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], known.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _residual_blend(known: np.ndarray, residual: np.ndarray, fade: int) -> np.ndarray:
    """Spread per-key residuals [T, C] (valid at known frames) over the clip: linear between keys, fading to zero
    over `fade` frames before the first and after the last key; exactly the residual at every key."""
    frames = np.arange(len(known))
    keys = np.flatnonzero(known)
    spread = np.stack([np.interp(frames, keys, residual[keys, c]) for c in range(residual.shape[1])], axis=1)
    before = np.clip(1.0 - (keys[0] - frames) / max(fade, 1), 0.0, 1.0)
    after = np.clip(1.0 - (frames - keys[-1]) / max(fade, 1), 0.0, 1.0)
    weight = np.where(frames < keys[0], before, np.where(frames > keys[-1], after, 1.0))
    return spread * weight[:, None]


def inbetween(
    model: MotionGPT3,
    features: np.ndarray,
    known_mask: np.ndarray,
    seed: int = 0,
    candidates: int = 1,
    guidance: float | None = None,
    steps: int | None = None,
    refine_steps: int = 60,
    fade_frames: int = 10,
    control: TaskControl = NO_CONTROL,
    text: str | None = None,
) -> list[np.ndarray]:
    """Fill the unknown frames of a raw clip; known frames come back unchanged (bit for bit).

    The first and last known blocks are the prompt's head and tail (upstream's fixed 25 %/75 % windows are the
    special case `known = [0, a) ∪ [b, L)`); the generated full-length latent is then refined by gradient
    descent through the VAE decoder so its decoded motion meets every known frame (sparse keys included), and
    the remaining residual at the keys is spread smoothly over the gaps.

    With a `text` (blank = none), the full-length latent comes from the text-to-motion prompt instead and the
    refinement also keeps the gaps close to that motion (`TEXT_GAP_WEIGHT`), so the text steers the fill.
    """
    clip = _check_clip(features, "features", min_frames=2)
    known = check_known_mask(known_mask, len(clip))
    _check_frames(model, len(clip), "features (clip length)")
    blocks = _known_blocks(known)
    (h0, h1), (t0, t1) = blocks[0], blocks[-1]
    text = (text or "").strip() or None
    with torch.no_grad(), model.autocast():
        if text is None:
            prompt = inbetween_prompt(model)
            latents = _input_latents(model, [clip[h0:h1], clip[t0:t1]], sample=False, seeds=None)
        else:
            prompt, latents = text_to_motion_prompt(model, text), None
        sampled = _sample(model, [prompt], latents, [seed], candidates, guidance, steps, control)
    target = model.normalize(torch.as_tensor(clip, device=model.device))
    gap_weight = 0.0 if text is None else TEXT_GAP_WEIGHT
    results = []
    for latent in sampled:
        refined = _refine_to_keys(model, latent, target, known, refine_steps, control, gap_weight)
        residual = (target - refined).cpu().numpy()
        blended = refined.cpu().numpy() + _residual_blend(known, residual, fade_frames)
        motion = model.denormalize(torch.as_tensor(blended, device=model.device)).cpu().numpy()
        motion[known] = clip[known]  # exactly as sent (normalising there and back moves them by float rounding)
        results.append(motion)
    return results


def _refine_to_keys(
    model: MotionGPT3,
    start: torch.Tensor,
    target: torch.Tensor,
    known: np.ndarray,
    iterations: int,
    control: TaskControl,
    gap_weight: float = 0.0,
) -> torch.Tensor:
    """Optimise the sampled VAE latent `start` [D] so its decoded clip matches the known frames (normalised
    space) and, with `gap_weight` > 0, stays near its own first decoding in the unknown frames -> [T, 263]."""
    lengths = torch.tensor([len(target)], device=model.device)
    start = start[None]
    with torch.no_grad():
        first = model.decode_latents(start, lengths)[0]
    if iterations <= 0:
        return first
    latent = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=0.05)
    mask = torch.as_tensor(known, device=model.device)
    progress = control.stage("refine")
    with torch.enable_grad():
        for step in range(iterations):
            control.check("in-between refinement")
            decoded = model.decode_latents(latent, lengths)[0]
            loss = ((decoded[mask] - target[mask]) ** 2).mean() + 1e-3 * ((latent - start) ** 2).mean()
            if gap_weight > 0 and not known.all():
                loss = loss + gap_weight * ((decoded[~mask] - first[~mask]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if progress is not None:
                progress(step + 1, iterations)
    model.zero_grad(set_to_none=True)  # only the latent is optimised; drop the weights' gradients
    with torch.no_grad():
        return model.decode_latents(latent, lengths)[0]
