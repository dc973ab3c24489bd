"""Every fast path against the straightforward baseline (`backend.tasks.baseline`) on the same weights and seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from backend.model.config import tiny_config
from backend.model.diffusion_head import draw_chain_noise, randn_like_rows
from backend.model.loading import build_model
from backend.model.quantize import quantize_int8
from backend.tasks.baseline import reference_caption, reference_sample, reference_text_to_motion
from backend.tasks.inference import motion_to_text, text_to_motion

pytestmark = pytest.mark.usefixtures("one_thread")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

STEPS = 12
# fp32 on the CPU: the fast path batches the same matmuls differently, so results differ by rounding only.
FP32_TOLERANCE = 1e-4  # of the motion's largest absolute feature value


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = build_model(tiny_config(), None, "random")
    with torch.no_grad():  # a non-zero null condition, so that guidance matters
        model.fake_latent.normal_()
    return model


def relative_deviation(fast: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(fast - reference).max() / np.abs(reference).max())


@pytest.mark.parametrize("shape", [(3, 1, 16), (2, 1, 7), (2, 4, 5)])
def test_chain_noise_equals_step_by_step_draws(shape):
    def generators():
        return [torch.Generator().manual_seed(s) for s in range(shape[0])]

    gens = generators()
    one_by_one = torch.stack([randn_like_rows(shape, gens, "cpu") for _ in range(5)])
    assert torch.equal(draw_chain_noise(5, shape, generators(), "cpu"), one_by_one)
    single = torch.Generator().manual_seed(9)
    expected = torch.stack([randn_like_rows(shape, single, "cpu") for _ in range(5)])
    assert torch.equal(draw_chain_noise(5, shape, torch.Generator().manual_seed(9), "cpu"), expected)


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_fast_sampler_matches_the_whole_network_per_step(model, guidance):
    head = model.diffloss
    cond = torch.randn(3, 4, model.config.hidden_dim)
    seeds = (4, 5, 6)
    fast = head.sample(cond, model.fake_latent, guidance, STEPS, [torch.Generator().manual_seed(s) for s in seeds])
    for row, seed in enumerate(seeds):
        generator = torch.Generator().manual_seed(seed)
        reference = reference_sample(head, cond[row : row + 1], model.fake_latent, guidance, STEPS, generator)
        torch.testing.assert_close(fast[row : row + 1], reference, atol=1e-5, rtol=1e-5)


def test_text_to_motion_matches_the_baseline(model):
    """Unpadded prompts, one backbone pass per prompt for all candidates, batched chains vs one 192-token request
    at a time through the straightforward path."""
    texts, frames = ["a person walks forward", "jump"], [40, 23]
    fast = text_to_motion(model, texts, frames, seed=[7, 8], candidates=2, steps=STEPS)
    for i, text in enumerate(texts):
        for k in range(2):
            reference = reference_text_to_motion(model, text, frames[i], seed=7 + i, candidate=k, steps=STEPS)
            assert fast[i][k].shape == reference.shape == (frames[i], 263)
            assert relative_deviation(fast[i][k], reference) < FP32_TOLERANCE
    assert np.abs(fast[0][0] - fast[0][1]).max() > 1e-3  # the candidates really are different samples


def test_cached_captioning_matches_recomputing_every_token(model, cmu_walk):
    clips = [cmu_walk[0][:80], cmu_walk[0][:45]]
    fast = motion_to_text(model, clips, max_new_tokens=8)
    assert fast == [reference_caption(model, clip, 8) for clip in clips]
    assert any(fast)


def test_int8_diffusion_stays_within_tolerance_and_is_opt_in(model):
    """Dynamic int8 moves the outputs (hence opt-in); the stated tolerance is 10 % of the motion's range."""
    reference = text_to_motion(model, ["walk"], 40, seed=3, steps=STEPS)[0][0]
    quantized = build_model(model.config, model.state_dict(), "copy")
    assert np.array_equal(text_to_motion(quantized, ["walk"], 40, seed=3, steps=STEPS)[0][0], reference)
    quantize_int8(quantized)
    moved = relative_deviation(text_to_motion(quantized, ["walk"], 40, seed=3, steps=STEPS)[0][0], reference)
    assert 0 < moved < 0.1


def test_benchmark_reports_every_stage_for_both_paths():
    from backend.bench.model import STAGES, benchmark_model, format_model_benchmark

    result = benchmark_model("tiny", "cpu", frames=30, repeats=1, batches=(1, 2), caption_tokens=3)
    for path in ("fast_ms", "baseline_ms"):
        assert set(result[path]) == {*STAGES, "end to end"}
        assert all(ms > 0 for ms in result[path].values())
    assert set(result["throughput_motions_per_s"]) == {1, 2}
    assert result["max_relative_deviation_from_baseline"] < FP32_TOLERANCE
    table = format_model_benchmark(result)
    assert "diffusion head" in table and "speed-up" in table


@needs_cuda
def test_cuda_graph_sampling_matches_eager_and_pads_batches():
    torch.manual_seed(0)
    model = build_model(tiny_config(), None, "random").to("cuda")
    head, cond = model.diffloss, torch.randn(3, 4, model.config.hidden_dim, device="cuda")

    def sample(rows: slice) -> torch.Tensor:
        gens = [torch.Generator().manual_seed(s) for s in range(10)][rows]
        return head.sample(cond[rows], model.fake_latent, 3.0, STEPS, gens)

    graphed = sample(slice(0, 3))  # batch 3 runs in the graph of bucket 4
    alone = sample(slice(1, 2))
    head.cuda_graphs = False
    try:
        eager = sample(slice(0, 3))
    finally:
        head.cuda_graphs = True
    torch.testing.assert_close(graphed, eager, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(graphed[1:2], alone, atol=1e-4, rtol=1e-4)


@needs_cuda
def test_cuda_fast_path_matches_the_cpu_baseline():
    torch.manual_seed(0)
    cpu = build_model(tiny_config(), None, "random")
    gpu = build_model(tiny_config(), cpu.state_dict(), "copy").to("cuda")
    reference = reference_text_to_motion(cpu, "walk", 40, seed=3, steps=STEPS)
    fast = text_to_motion(gpu, ["walk"], 40, seed=3, steps=STEPS)[0][0]
    assert relative_deviation(fast, reference) < 0.05  # bf16/fp16 autocast on the GPU


@pytest.mark.parametrize("latent_size", [1, 4])
def test_vae_decoder_shortcut_matches_the_torch_layers(model, latent_size):
    """Eval decoding runs each clip's frames on their own and, with one memory token, skips the cross-attention's
    per-frame work; train mode runs torch's own layers (the tiny preset has no dropout, so both modes compute the
    same function)."""
    torch.manual_seed(latent_size)
    config = dataclasses.replace(model.config, vae=dataclasses.replace(model.config.vae, latent_size=latent_size))
    z, lengths = torch.randn(3, latent_size, model.config.latent_dim), torch.tensor([40, 7, 23])
    vae = build_model(config, None, "random").vae
    with torch.no_grad():
        fast = vae.eval().decode(z, lengths)
        reference = vae.train().decode(z, lengths)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)
    assert fast[1, 7:].abs().max() == 0 and fast[1, :7].abs().max() > 0
