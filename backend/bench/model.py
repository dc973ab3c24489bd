"""`motiongpt3 bench model`: the model's fast path against the straightforward baseline
(`backend.tasks.baseline`) on the same weights, in the same run."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


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


BENCH_PROMPT = "a person walks forward, turns around and waves with both hands"
# Distinct prompts for the throughput runs (a server batch holds different requests, not copies of one).
BATCH_PROMPTS = [f"{BENCH_PROMPT}, take {i}" for i in range(64)]

# Stage names: the fast path and the baseline each report these (ms; "text decode" is per generated token).
STAGES = ("tokenise", "prefill", "text decode (per token)", "diffusion head", "VAE decode", "feature->joints")


def _bench_models(preset: str, device: str, checkpoint: str | None, int8: bool) -> tuple[Any, Any, str]:
    """(fast-path model, baseline model, description of the weights). Weights: the checkpoint, the embedded demo
    model for preset demo when it is built, else random weights of the preset (same sizes, same cost). With
    `int8` the fast path runs on a quantised copy and the baseline stays fp32 (so the deviation is int8's)."""
    import torch

    from backend.model.config import PRESETS
    from backend.model.loading import EMBEDDED_MODEL, build_model, load_model, resolve_device
    from backend.model.quantize import quantize_int8

    if checkpoint is None and preset == "demo" and EMBEDDED_MODEL.is_file():
        checkpoint = str(EMBEDDED_MODEL)
    if checkpoint is not None:
        model, weights = load_model(checkpoint, device), f"weights {Path(checkpoint).name}"
    else:
        torch.manual_seed(0)
        model, weights = build_model(PRESETS[preset](), None, "random").to(resolve_device(device)), "random weights"
    if not int8:
        return model, model, weights
    quantized = quantize_int8(build_model(model.config, model.state_dict(), "copy"))
    return quantized, model, weights + "; fast path int8 (diffusion + backbone), baseline fp32"


def benchmark_model(
    preset: str = "official",
    device: str = "auto",
    frames: int = 196,
    repeats: int = 3,
    batches: Sequence[int] = (1, 8, 64),
    caption_tokens: int = 40,
    baseline: bool = True,
    checkpoint: str | None = None,
    int8: bool = False,
) -> dict[str, Any]:
    """Median ms per stage and end to end of text-to-motion (`frames` frames, the configured diffusion steps and
    CFG) for the fast path (`backend.tasks.inference`) and, with `baseline`, the straightforward path
    (`backend.tasks.baseline`: batch 1, 192-token prompts, fp32, whole network per step, no KV cache), both on the
    same weights in this run; throughput (motions/s) at each batch size; captioning per token; peak memory;
    and how far the fast path's motion is from the baseline's on the same seed."""
    import torch

    from backend.model.tokenizer import load_tokenizer, tokenize_batch
    from backend.tasks.baseline import (
        reference_caption_tokens,
        reference_decode,
        reference_sample,
        reference_text_to_motion,
    )
    from backend.tasks.inference import (
        NO_CONTROL,
        _greedy_or_sampled_decode,
        caption_prompt,
        request_generator,
        text_to_motion,
        text_to_motion_prompt,
    )
    from shared.motion.humanml3d import features_to_joints

    model, reference_model, weights = _bench_models(preset, device, checkpoint, int8)
    target, config = model.device, model.config
    load_tokenizer()
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
    guidance, max_tokens = config.diffusion.guidance_scale, config.max_prompt_tokens
    prompt = text_to_motion_prompt(model, BENCH_PROMPT)
    clip = np.random.default_rng(0).normal(size=(frames, 263)).astype(np.float32) * model.feature_std.cpu().numpy()
    lengths = torch.tensor([frames], device=target)
    fast: dict[str, list[float]] = {}
    base: dict[str, list[float]] = {}

    def time_stages(times: dict[str, list[float]], naive: bool) -> None:
        """One timed pass over the stages of one request (batch 1)."""
        with _stopwatch(times, "tokenise", target):
            tokens = tokenize_batch([prompt], max_tokens, pad_to_max=naive)
        with _stopwatch(times, "prefill", target):
            condition = (reference_model if naive else model).motion_condition(tokens)
        with _stopwatch(times, "diffusion head", target):
            if naive:
                latents = reference_sample(
                    reference_model.diffloss,
                    condition,
                    reference_model.fake_latent,
                    guidance,
                    None,
                    request_generator(0),
                )
            else:
                latents = model.sample_latents(condition, guidance, None, [request_generator(0)])[:, None]
        with _stopwatch(times, "VAE decode", target):
            vae_input = model.from_lm_space(latents[:, 0].float())
            decoded = reference_decode(model, vae_input, lengths) if naive else model.decode_latents(vae_input, lengths)
        features = model.denormalize(decoded[0].float()).cpu().numpy()
        with _stopwatch(times, "feature->joints", target):
            features_to_joints(features)
        with _stopwatch(times, "caption", target):
            if naive:
                count = len(reference_caption_tokens(reference_model, clip, caption_tokens))
            else:
                latent = model.to_lm_space(model.encode_latents(*model.pad_features([clip])))
                caption_batch = tokenize_batch([caption_prompt(model)], max_tokens, padding_side="left")
                count = len(
                    _greedy_or_sampled_decode(model, caption_batch, latent, caption_tokens, False, 0, NO_CONTROL)[0]
                )
        times.setdefault("caption tokens", []).append(count + 1 if count < caption_tokens else count)

    with torch.no_grad():
        for _ in range(repeats + 1):  # the first round warms up (and captures CUDA graphs)
            with model.autocast():
                time_stages(fast, naive=False)
                with _stopwatch(fast, "end to end", target):
                    features_to_joints(text_to_motion(model, [BENCH_PROMPT], frames)[0][0])
            if baseline:
                time_stages(base, naive=True)
                with _stopwatch(base, "end to end", target):
                    features_to_joints(reference_text_to_motion(reference_model, BENCH_PROMPT, frames))
        throughput = {}
        for batch in batches:
            times: dict[str, list[float]] = {}
            for _ in range(max(1, repeats // 2) + 1):
                with _stopwatch(times, "batch", target):
                    text_to_motion(model, BATCH_PROMPTS[:batch], frames)
            throughput[batch] = batch / (float(np.median(times["batch"][1:])) / 1000.0)
        fast_motion = text_to_motion(model, [BENCH_PROMPT], frames, seed=7)[0][0]
        deviation = None
        if baseline:
            reference = reference_text_to_motion(reference_model, BENCH_PROMPT, frames, seed=7)
            deviation = float(np.abs(fast_motion - reference).max() / max(np.abs(reference).max(), 1e-12))

    def summary(times: dict[str, list[float]]) -> dict[str, float]:
        medians = {name: float(np.median(values[1:] or values)) for name, values in times.items()}
        tokens = medians.pop("caption tokens")
        medians["text decode (per token)"] = medians.pop("caption") / max(tokens, 1.0)
        return {name: medians[name] for name in (*STAGES, "end to end")}

    result: dict[str, Any] = {
        "preset": preset,
        "weights": weights,
        "device": _device_name(target),
        "frames": frames,
        "diffusion_steps": config.diffusion.sampling_steps,
        "guidance": guidance,
        "repeats": repeats,
        "fast_ms": summary(fast),
        "throughput_motions_per_s": throughput,
        "peak_memory_mb": _peak_memory_mb(target),
    }
    if baseline:
        result["baseline_ms"] = summary(base)
        result["baseline_throughput_motions_per_s"] = 1000.0 / result["baseline_ms"]["end to end"]
        result["max_relative_deviation_from_baseline"] = deviation
    return result


def _device_name(device: Any) -> str:
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads"


def _peak_memory_mb(device: Any) -> float:
    """Peak CUDA memory allocated, or the process's peak resident set on the CPU (MiB)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def format_model_benchmark(result: dict[str, Any]) -> str:
    """The benchmark result as a text table: stages (fast, baseline, speed-up), throughput, memory."""
    has_base = "baseline_ms" in result
    lines = [
        f"model benchmark: preset {result['preset']} ({result['weights']}), {result['frames']} frames, "
        f"{result['diffusion_steps']} diffusion steps, CFG {result['guidance']:g}, {result['device']}, "
        f"median of {result['repeats']}",
        f"  {'stage (ms)':<26}{'fast':>10}" + (f"{'baseline':>12}{'speed-up':>10}" if has_base else ""),
    ]
    for name, ms in result["fast_ms"].items():
        row = f"  {name:<26}{ms:10.2f}"
        if has_base:
            ref = result["baseline_ms"][name]
            row += f"{ref:12.2f}{ref / ms if ms > 0 else float('inf'):9.1f}x"
        lines.append(row)
    lines.append(f"  {'throughput (motions/s)':<26}")
    base_rate = result.get("baseline_throughput_motions_per_s")
    if base_rate:
        lines.append(f"  {'  baseline, batch 1':<26}{base_rate:10.2f}")
    for batch, rate in result["throughput_motions_per_s"].items():
        row = f"  {f'  batch {batch}':<26}{rate:10.2f}"
        if base_rate:
            row += f"{'':12}{rate / base_rate:9.1f}x"
        lines.append(row)
    lines.append(f"  peak memory: {result['peak_memory_mb']:.0f} MiB")
    if result.get("max_relative_deviation_from_baseline") is not None:
        lines.append(
            f"  fast vs baseline motion, same seed: max |diff| / max |baseline| = "
            f"{result['max_relative_deviation_from_baseline']:.2e}"
        )
    return "\n".join(lines)


def run_model_benchmark(
    presets: Sequence[str] = ("official",),
    device: str = "auto",
    json_path: Path | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Benchmark each preset, print its table and write all results to `json_path` (if given)."""
    results = []
    for preset in presets:
        result = benchmark_model(preset, device, **options)
        print(format_model_benchmark(result), flush=True)
        results.append(result)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {json_path}")
    return results
