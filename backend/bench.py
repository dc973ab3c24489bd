"""Benchmarks that print numbers: the motion core (encode, decode, IK) on one clip length."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from shared.motion.humanml3d import features_to_joints, joints_to_features
from shared.motion.ik import solve_local_rotations
from shared.motion.skeleton import REFERENCE_POSE_000021

GOAL_MS = 5.0


def _median_ms(function: Callable[[], object], repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def benchmark_motion(frames: int = 196, repeats: int = 200) -> dict[str, float]:
    """Median milliseconds of encode (frames+1 joints -> frames rows), decode and IK of `frames` frames."""
    rng = np.random.default_rng(0)
    t = np.arange(frames + 1)[:, None, None] / 20.0
    # A moving, articulated motion: the reference pose walking forward with a wobble on every joint.
    joints = REFERENCE_POSE_000021[None] + 0.05 * np.sin(t * rng.uniform(1, 6, (1, 22, 3)))
    joints[..., 2] += 1.2 * t[..., 0]
    features = joints_to_features(joints)
    decoded = features_to_joints(features)
    return {
        "encode": _median_ms(lambda: joints_to_features(joints), repeats),
        "decode": _median_ms(lambda: features_to_joints(features), repeats),
        "ik": _median_ms(lambda: solve_local_rotations(decoded), repeats),
    }


def run_motion_benchmark(frames: int = 196, repeats: int = 200) -> None:
    """Print the motion benchmark as a table with the ratio to the 5 ms goal."""
    results = benchmark_motion(frames, repeats)
    print(f"motion core, {frames} frames, median of {repeats} runs (goal <= {GOAL_MS:g} ms each)")
    for name, ms in results.items():
        print(f"  {name:<7} {ms:7.3f} ms   {ms / GOAL_MS:5.2f} x goal")


@contextmanager
def _stopwatch(times: dict[str, list[float]], name: str, device: object) -> Iterator[None]:
    """Add the wall time (ms, CUDA synchronised) of the block to times[name]."""
    import torch

    cuda = str(device).startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    yield
    if cuda:
        torch.cuda.synchronize()
    times.setdefault(name, []).append((time.perf_counter() - start) * 1000.0)


def benchmark_model(
    preset: str = "official", device: str = "auto", frames: int = 196, repeats: int = 3
) -> dict[str, float]:
    """Median ms per stage of text-to-motion (one prompt, `frames` frames, 100 diffusion steps, CFG) and of
    captioning a `frames`-frame clip (40 new tokens) with and without the KV cache; random weights."""
    import torch

    from backend.inference import NO_CONTROL, _greedy_or_sampled_decode, request_generator
    from backend.model.config import PRESETS
    from backend.model.loading import build_model, resolve_device
    from backend.model.tokenizer import (
        EOS,
        load_tokenizer,
        motion_input_sequence,
        motion_output_sequence,
        tokenize_batch,
    )

    target = resolve_device(device)
    torch.manual_seed(0)
    model = build_model(PRESETS[preset](), None, "random").to(target)
    config = model.config
    load_tokenizer()
    holders = config.backbone.holders_per_motion
    prompt = (
        "a person walks forward, turns around and waves with both hands \n " + motion_output_sequence(holders) + EOS
    )
    caption_prompt = "Generate text: " + motion_input_sequence(holders) + " \n"
    clip = np.random.default_rng(0).normal(size=(frames, 263)).astype(np.float32) * model.feature_std.cpu().numpy()
    lengths = torch.tensor([frames], device=target)
    times: dict[str, list[float]] = {}
    with torch.no_grad(), model.autocast():
        for _ in range(repeats + 1):  # the first round warms up
            with _stopwatch(times, "t2m tokenise", target):
                tokens = tokenize_batch([prompt], config.max_prompt_tokens)
            with _stopwatch(times, "t2m backbone forward", target):
                condition = model.motion_condition(tokens)
            with _stopwatch(times, "t2m diffusion head (100 steps, CFG)", target):
                latents = model.sample_latents(condition, config.diffusion.guidance_scale, None, [request_generator(0)])
            with _stopwatch(times, "t2m VAE decode", target):
                model.decode_latents(model.from_lm_space(latents.float()), lengths)

            batch, clip_lengths = model.pad_features([clip])
            latent = model.to_lm_space(model.encode_latents(batch, clip_lengths))
            caption_tokens = tokenize_batch([caption_prompt], config.max_prompt_tokens, padding_side="left")
            with _stopwatch(times, "caption, KV cache (40 tokens)", target):
                generated = _greedy_or_sampled_decode(model, caption_tokens, latent, 40, False, 0, NO_CONTROL)
            times["caption tokens generated"] = [len(generated[0]) + 1]
            with _stopwatch(times, "caption, no cache (40 tokens)", target):
                _decode_without_cache(model, caption_tokens, latent, 40)
    medians = {name: float(np.median(values[1:] or values)) for name, values in times.items()}
    medians["t2m total"] = sum(v for k, v in medians.items() if k.startswith("t2m "))
    return medians


def _decode_without_cache(model: object, tokens: object, latent: object, new_tokens: int) -> list[int]:
    """Greedy decoding that re-runs the whole sequence for every token (the baseline the KV cache beats)."""
    import torch

    from backend.model.config import MOTION_TOKEN_START
    from backend.model.tokenizer import TokenBatch

    ids = tokens.ids.to(model.device)
    generated: list[int] = []
    for _ in range(new_tokens):
        sequence = torch.cat([ids, torch.tensor([generated], dtype=torch.long, device=model.device)], dim=1)
        batch = TokenBatch(
            sequence, torch.ones_like(sequence), torch.arange(sequence.shape[1], device=model.device)[None]
        )
        embeds, _ = model.embed_prompt(batch, latent)
        hidden, _ = model.lm(embeds, (sequence >= MOTION_TOKEN_START).long(), batch.attention_mask, batch.position_ids)
        generated.append(int(model.lm.text_logits(hidden[0, -1]).argmax()))
    return generated


def run_model_benchmark(preset: str = "official", device: str = "auto", frames: int = 196, repeats: int = 3) -> None:
    """Print the model benchmark: per-stage text-to-motion latency and captioning with/without the KV cache."""
    import torch

    from backend.model.loading import resolve_device

    target = resolve_device(device)
    card = torch.cuda.get_device_name(target) if target.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    results = benchmark_model(preset, device, frames, repeats)
    print(f"model benchmark: preset {preset}, random weights, {frames} frames, {card}, median of {repeats}")
    tokens = results.pop("caption tokens generated")
    for name, ms in results.items():
        print(f"  {name:<40} {ms:9.2f} ms")
    cached = results["caption, KV cache (40 tokens)"] / tokens
    uncached = results["caption, no cache (40 tokens)"] / 40
    print(
        f"  per caption token: {cached:.2f} ms with the KV cache, {uncached:.2f} ms without ({uncached / cached:.1f}x)"
    )
