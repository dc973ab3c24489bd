"""The four tasks on a tiny random-weight model: lengths, seeds, candidates, guidance, cancellation, masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.model.config import EOS_ID, MOTION_TOKEN_START, tiny_config
from backend.model.loading import build_model
from backend.model.tokenizer import load_tokenizer, motion_input_sequence, tokenize_batch
from backend.tasks.inference import (
    GenerationCancelled,
    TaskControl,
    TaskError,
    inbetween,
    motion_to_text,
    predict,
    text_to_motion,
)

STEPS = 8  # respaced diffusion steps: enough to exercise the chain, fast on a CPU


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = build_model(tiny_config(), None, "random")
    with torch.no_grad():  # a non-zero null condition so that guidance visibly matters
        model.fake_latent.normal_()
    return model


@pytest.fixture(scope="module")
def clip(cmu_walk) -> np.ndarray:
    return cmu_walk[0][:80]


def test_requested_lengths_are_exact(model):
    out = text_to_motion(model, ["walk", "jump", "wave"], frames=[7, 20, 33], steps=STEPS)
    assert [o[0].shape for o in out] == [(7, 263), (20, 263), (33, 263)]
    for bad in (0, 197):
        with pytest.raises(TaskError, match=r"outside 1\.\.196"):
            text_to_motion(model, ["walk"], frames=bad, steps=STEPS)


def test_short_requests_are_decoded_at_20_frames_and_trimmed(model):
    short = text_to_motion(model, ["walk"], frames=7, seed=5, steps=STEPS)[0][0]
    native = text_to_motion(model, ["walk"], frames=20, seed=5, steps=STEPS)[0][0]
    np.testing.assert_allclose(short, native[:7], atol=1e-5)


def test_same_request_same_motion_whatever_the_batch(model):
    alone = text_to_motion(model, ["a person waves"], frames=24, seed=11, steps=STEPS)[0][0]
    batched = text_to_motion(
        model,
        ["someone runs in a circle quickly", "a person waves", "x"],
        frames=[40, 24, 10],
        seed=[1, 11, 2],
        steps=STEPS,
    )[1][0]
    np.testing.assert_array_equal(batched, alone)  # bit for bit (backend/model/rows.py)
    again = text_to_motion(model, ["a person waves"], frames=24, seed=11, steps=STEPS)[0][0]
    np.testing.assert_array_equal(again, alone)
    other_seed = text_to_motion(model, ["a person waves"], frames=24, seed=12, steps=STEPS)[0][0]
    assert np.abs(other_seed - alone).max() > 1e-3


WORDS = "a person walks runs jumps forward then turns left right and waves both hands slowly in circle".split()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("guidance", [None, 1.0])
def test_a_request_gives_the_same_motion_bit_for_bit_in_any_batch(model, threads, guidance):
    """protocol.md "Same seed, same motion": each request of randomly composed batches (1-12 prompts of 1-30 words,
    1-196 frames, 1 or 3 candidates, with and without guidance) equals the same request run alone, exactly."""
    rng = np.random.default_rng(threads)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(3):
            size, candidates = int(rng.integers(1, 13)), int(rng.choice([1, 3]))
            texts = [" ".join(rng.choice(WORDS, int(rng.integers(1, 31)))) for _ in range(size)]
            frames = [int(rng.integers(1, 197)) for _ in range(size)]
            seeds = [int(rng.integers(0, 2**32)) for _ in range(size)]
            batched = text_to_motion(model, texts, frames, seeds, candidates, guidance, steps=3)
            for index in rng.choice(size, min(size, 3), replace=False):
                alone = text_to_motion(model, [texts[index]], frames[index], seeds[index], candidates, guidance, 3)
                for got, expected in zip(batched[index], alone[0], strict=True):
                    np.testing.assert_array_equal(got, expected)
    finally:
        torch.set_num_threads(before)


def test_candidates_differ(model):
    candidates = text_to_motion(model, ["walk"], frames=20, seed=3, candidates=3, steps=STEPS)[0]
    assert len(candidates) == 3
    assert min(np.abs(a - b).max() for i, a in enumerate(candidates) for b in candidates[i + 1 :]) > 1e-3


def test_guidance_one_ignores_the_null_condition(model):
    def run(guidance: float) -> np.ndarray:
        return text_to_motion(model, ["walk"], frames=20, seed=4, guidance=guidance, steps=STEPS)[0][0]

    before = run(1.0), run(7.5)
    with torch.no_grad():
        saved = model.fake_latent.clone()
        model.fake_latent.add_(1.0)
    try:
        after = run(1.0), run(7.5)
    finally:
        with torch.no_grad():
            model.fake_latent.copy_(saved)
    np.testing.assert_array_equal(after[0], before[0])  # scale 1 = the conditional branch alone
    assert np.abs(after[1] - before[1]).max() > 1e-4  # guided sampling does use it


def test_cancellation_stops_within_one_step(model):
    steps_seen = []

    def progress(stage: str, done: int, total: int) -> None:
        steps_seen.append((stage, done))

    control = TaskControl(progress=progress, should_cancel=lambda: len(steps_seen) >= 3)
    with pytest.raises(GenerationCancelled):
        text_to_motion(model, ["walk"], frames=20, steps=STEPS, control=control)
    assert steps_seen == [("diffusion", 1), ("diffusion", 2), ("diffusion", 3)]


def test_captions_are_deterministic_and_match_a_cache_free_decoder(model, clip):
    captions = motion_to_text(model, [clip, clip[:50]], max_new_tokens=6)
    assert captions == motion_to_text(model, [clip, clip[:50]], max_new_tokens=6)
    assert motion_to_text(model, [clip[:50]], max_new_tokens=6)[0] == captions[1]  # batch-independent
    assert captions[0] == _naive_greedy_caption(model, clip, 6)


def _naive_greedy_caption(model, clip: np.ndarray, max_new: int) -> str:
    """Greedy decoding that re-runs the whole sequence every step (no KV cache): the oracle for the cached loop."""
    tokenizer = load_tokenizer()
    prompt = "Generate text: " + motion_input_sequence(model.config.backbone.holders_per_motion) + " \n"
    ids = tokenize_batch([prompt], 192).ids[0].tolist()
    batch, lengths = model.pad_features([clip])
    latent = model.to_lm_space(model.encode_latents(batch, lengths))
    generated: list[int] = []
    with torch.no_grad():
        for _ in range(max_new):
            tokens = torch.tensor([ids + generated])
            type_ids = (tokens >= MOTION_TOKEN_START).long()
            embeds = model.lm.embed_tokens(tokens, type_ids)
            holders = tokens == 50262
            embeds[holders] = model.motion_und_head(latent).reshape(-1, model.config.hidden_dim)
            hidden, _ = model.lm(embeds, type_ids, torch.ones_like(tokens), torch.arange(tokens.shape[1])[None])
            logits = model.lm.text_logits(hidden[0, -1])
            for token in set(generated):  # repetition penalty 1.1 on generated tokens
                logits[token] = logits[token] / 1.1 if logits[token] > 0 else logits[token] * 1.1
            logits[[50257, 50258]] = -torch.inf
            token = int(logits.argmax())
            if token == EOS_ID:
                break
            generated.append(token)
    return tokenizer.decode(generated, skip_special_tokens=True).replace("\n", " ").strip().strip('"').strip()


def test_prediction_keeps_the_prefix_and_adds_the_frames(model, clip):
    out = predict(model, clip[:30], frames=25, seed=1, candidates=2, steps=STEPS)
    assert [o.shape for o in out] == [(55, 263), (55, 263)]
    np.testing.assert_array_equal(out[0][:30], clip[:30].astype(np.float32))
    assert np.abs(out[0][30:] - out[1][30:]).max() > 1e-3


@pytest.mark.parametrize(
    "known_frames",
    [np.r_[0:20, 60:80], np.r_[0:10, 35, 50, 70:80], np.r_[25:30]],
    ids=["upstream-windows", "sparse-keys", "one-block"],
)
def test_inbetween_honours_the_known_frames(model, clip, known_frames):
    known = np.zeros(len(clip), dtype=bool)
    known[known_frames] = True
    (out,) = inbetween(model, clip, known, seed=2, steps=STEPS, refine_steps=15)
    assert out.shape == clip.shape
    stats_std = model.feature_std.numpy()
    assert np.abs((out[known] - clip[known]) / stats_std).max() < 1e-3  # normalised space
    assert np.all(np.isfinite(out))


def test_inbetween_with_a_text_keeps_the_keys_and_a_blank_text_is_none(model, clip):
    known = np.zeros(len(clip), dtype=bool)
    known[np.r_[0:20, 60:80]] = True
    plain = inbetween(model, clip, known, seed=2, steps=STEPS, refine_steps=5)[0]
    blank = inbetween(model, clip, known, seed=2, steps=STEPS, refine_steps=5, text=" \n ")[0]
    texted = inbetween(model, clip, known, seed=2, steps=STEPS, refine_steps=5, text="a person jumps up")[0]
    np.testing.assert_array_equal(blank, plain)
    assert np.abs((texted[known] - clip[known]) / model.feature_std.numpy()).max() < 1e-3
    assert not np.array_equal(texted[~known], plain[~known])  # the text-to-motion prompt was used
    assert np.all(np.isfinite(texted))


def test_inbetween_rejects_bad_masks(model, clip):
    with pytest.raises(TaskError, match="known_mask"):
        inbetween(model, clip, np.ones(10, dtype=bool), steps=STEPS)
    with pytest.raises(TaskError, match="at least one frame"):
        inbetween(model, clip, np.zeros(len(clip), dtype=bool), steps=STEPS)


def test_bad_inputs_are_task_errors(model):
    with pytest.raises(TaskError, match="non-empty"):
        text_to_motion(model, [" "], frames=20)
    with pytest.raises(TaskError, match=r"\(N, 263\)"):
        motion_to_text(model, [np.zeros((10, 200))])
    bad = np.zeros((10, 263))
    bad[2, 2] = np.nan
    with pytest.raises(TaskError, match="NaN"):
        predict(model, bad, frames=10)


def test_encode_decode_public_api(model, clip):
    latent = model.encode_motion(clip)
    assert latent.shape == (model.config.latent_dim,)
    decoded = model.decode_motion(latent, 33)
    assert decoded.shape == (33, 263)
    sampled = model.encode_motion(clip, sample=True, seed=1)
    assert np.abs(sampled - latent).max() > 0
    np.testing.assert_array_equal(sampled, model.encode_motion(clip, sample=True, seed=1))


@pytest.mark.parametrize("joint", [False, True])
def test_several_latent_tokens_per_motion_flow_through_every_task(clip, joint):
    """A VAE with 3 latent tokens (MLD's `latent_size`): the tasks see one flattened latent of 3·D per motion, the
    motion input head and the diffusion head take and give all of it (per token, or as one row: `joint_latent`), and
    a request is still bit-identical alone or batched."""
    import dataclasses

    torch.manual_seed(1)
    base = tiny_config()
    config = dataclasses.replace(
        base,
        vae=dataclasses.replace(base.vae, latent_size=3),
        diffusion=dataclasses.replace(base.diffusion, joint_latent=joint),
    )
    model = build_model(config, None, "random")
    latent = model.encode_motion(clip)
    assert latent.shape == (3 * config.latent_dim,)
    assert model.motion_und_head.in_features == 3 * config.latent_dim
    tokens = model.vae.encode(model.pad_features([clip])[0], torch.tensor([len(clip)]))  # [1, 3, D]
    np.testing.assert_array_equal(latent, tokens[0].flatten().detach().numpy())  # token-major flattening
    with torch.no_grad():
        expected = model.denormalize(model.vae.decode(tokens, torch.tensor([33])))[0].numpy()
    np.testing.assert_allclose(model.decode_motion(latent, 33), expected, atol=1e-5)  # the same tokens back

    alone = text_to_motion(model, ["a person waves"], frames=24, seed=11, steps=STEPS)[0][0]
    batched = text_to_motion(model, ["walk", "a person waves"], frames=[40, 24], seed=[1, 11], steps=STEPS)[1][0]
    np.testing.assert_array_equal(batched, alone)
    assert alone.shape == (24, 263)
    assert predict(model, clip[:30], frames=20, steps=STEPS)[0].shape == (50, 263)
    known = np.zeros(60, dtype=bool)
    known[:10] = known[50:] = True
    filled = inbetween(model, clip[:60], known, steps=STEPS, refine_steps=15)[0]
    assert np.abs((filled[known] - clip[:60][known]) / model.feature_std.numpy()).max() < 1e-3
    assert isinstance(motion_to_text(model, [clip], max_new_tokens=4)[0], str)
