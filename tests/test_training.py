"""Training on the tiny preset: data loader, prompts, text labels, losses, freezing, resume, checkpoints, CLI."""

from __future__ import annotations

import argparse
import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.model.checkpoint import read_safetensors
from backend.model.config import EOM_ID, EOS_ID, HOLDER_INPUT_ID, HOLDER_OUTPUT_ID, MASKED_MOTION_ID, SOM_ID
from backend.model.loading import build_model
from backend.model.tokenizer import EOS, load_tokenizer, motion_input_sequence, motion_output_sequence
from backend.tasks.inference import CAPTION_PREFIX, INBETWEEN_PREFIX, PREDICT_PREFIX
from backend.train import trainer as trainer_module
from backend.train.cli import add_train_command
from backend.train.data import IGNORE, Collate, MotionTextDataset, scan_split, text_labels
from backend.train.losses import LIMB_DIMS, text_loss, vae_losses
from backend.train.prompts import TemplateError, load_templates
from backend.train.stages import STAGES, build_optimizer, configure_trainable, get_stage, is_text_parameter
from backend.train.trainer import TrainConfig, Trainer, atomic_write, latest_checkpoint
from shared.motion.normalization import ASSETS

pytestmark = [
    pytest.mark.filterwarnings("ignore:stage .* without --init:UserWarning"),
    pytest.mark.usefixtures("one_thread"),
]

ALL_TEMPLATES = ["pretrain.json", "instructions.json", "text_to_text.json"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, cmu_walk) -> Path:
    """A HumanML3D-layout folder cut from the CMU walk 131_01 (features padded to 170 frames by repeating its last
    rows; F2 = two copies back to back)."""
    feats = np.concatenate([cmu_walk[0], cmu_walk[0][-5:]])
    assert feats.shape == (170, 263)
    doubled = np.concatenate([feats, feats])
    root = tmp_path_factory.mktemp("humanml3d")
    (root / "new_joint_vecs").mkdir()
    (root / "texts").mkdir()
    clips = {
        "000001": feats,  # 170 frames, two whole captions + a sub-clip 1.0-3.0 s = frames 20..60
        "000002": feats[10:110],  # 100 frames
        "000003": feats[:19],  # 19 frames: too short
        "000004": doubled,  # 340 frames: too long whole; sub-clip 0.5-5.0 s = frames 10..100; 0.0-0.5 s too short
        "000005": doubled[:199],  # 199 frames: kept, always cut to <= 196
        "000007": feats[:50],  # validation split only
    }
    texts = {
        "000001": [
            "a person walks forward.#a/DET person/NOUN#0.0#0.0",
            "someone strides ahead.#x#0.0#0.0",
            "a person raises both arms.#x#1.0#3.0",
        ],
        "000002": ["a man turns around.#x#0.0#0.0"],
        "000003": ["too short.#x#0.0#0.0"],
        "000004": ["a person walks in circles.#x#0.0#0.0", "a person jumps.#x#0.5#5.0", "a blip.#x#0.0#0.5"],
        "000005": ["a person jogs in place.#x#0.0#0.0"],
        "000006": ["no feature file.#x#0.0#0.0"],
        "000007": ["a validation clip.#x#0.0#0.0"],
    }
    for name, features in clips.items():
        np.save(root / "new_joint_vecs" / f"{name}.npy", features)
    for name, lines in texts.items():
        (root / "texts" / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "train.txt").write_text("000001\n000002\n000003\n000004\n000005\n000006\n", encoding="utf-8")
    (root / "val.txt").write_text("000007\n", encoding="utf-8")
    assets = ASSETS  # HumanML3D's released Mean.npy / Std.npy
    shutil.copy(assets / "humanml3d_mean.npy", root / "Mean.npy")
    shutil.copy(assets / "humanml3d_std.npy", root / "Std.npy")
    return root


def _config(data_root: Path, out: Path, stage: str, **overrides) -> TrainConfig:
    settings = dict(preset="tiny", steps=4, batch_size=4, save_every=100, progress=False, seed=7)
    settings.update(overrides)
    return TrainConfig(stage=stage, data=data_root, out=out, **settings)


# ----------------------------------------------------------------------------------------------- data


def test_split_keeps_20_to_199_frame_clips_and_caption_subclips(data_root):
    clips = scan_split(data_root, "train")
    assert [(c.name, c.start, c.end) for c in clips] == [
        ("000001", 0, 170),
        ("000001#20-60", 20, 60),
        ("000002", 0, 100),
        ("000004#10-100", 10, 100),
        ("000005", 0, 199),
    ]
    assert clips[0].captions == ("a person walks forward.", "someone strides ahead.")
    assert clips[1].captions == ("a person raises both arms.",)
    assert [c.name for c in scan_split(data_root, "val")] == ["000007"]


def test_crops_are_the_full_clip_or_multiples_of_4_and_at_most_196(data_root):
    dataset = MotionTextDataset(data_root, "train", subtasks=None, seed=3)  # VAE items: one per clip
    source = {c.name: dataset.features(c) for c in dataset.clips}
    expected = {  # full length (cut to 196), 4·(⌊L/4⌋−1), 4·⌊L/4⌋
        "000001": {170, 164, 168},
        "000001#20-60": {40, 36},
        "000002": {100, 96},
        "000004#10-100": {90, 84, 88},
        "000005": {196, 192},
    }
    seen: dict[str, set[int]] = {name: set() for name in expected}
    for epoch in range(60):
        for index, clip in enumerate(dataset.clips):
            sample = dataset[(epoch, index)]
            motion = sample.outputs[0]
            assert sample.frames == len(motion) and sample.clip == clip.name
            full = source[clip.name]
            offsets = [
                o for o in range(len(full) - len(motion) + 1) if np.array_equal(full[o : o + len(motion)], motion)
            ]
            assert offsets, f"{clip.name}: the crop is not a window of the clip"
            seen[clip.name].add(len(motion))
    assert seen == expected


def test_captions_are_drawn_from_the_clip_s_own_lines(data_root):
    dataset = MotionTextDataset(data_root, "train", subtasks=None, seed=3)
    captions = {dataset[(epoch, 0)].caption for epoch in range(30)}
    assert captions == {"a person walks forward.", "someone strides ahead."}
    assert {dataset[(epoch, 1)].caption for epoch in range(5)} == {"a person raises both arms."}


def test_items_are_a_function_of_seed_epoch_and_index(data_root):
    subtasks = load_templates(ALL_TEMPLATES)
    first = MotionTextDataset(data_root, "train", subtasks, seed=11)
    again = MotionTextDataset(data_root, "train", subtasks, seed=11)
    assert len(first) == 5 * len(subtasks)  # every clip meets every subtask once per epoch
    for key in [(0, 0), (0, 17), (2, 17), (5, len(first) - 1)]:
        a, b = first[key], again[key]
        assert a.text == b.text and a.frames == b.frames
        assert all(np.array_equal(x, y) for x, y in zip(a.outputs + a.inputs, b.outputs + b.inputs, strict=True))
    texts = {first[(epoch, 17)].text + str(first[(epoch, 17)].frames) for epoch in range(8)}
    assert len(texts) > 1  # another epoch, another draw


def test_task_samples_split_motions_as_the_spec_says(data_root):
    subtasks = load_templates(["pretrain.json"])
    dataset = MotionTextDataset(data_root, "train", subtasks, seed=0, quote_prob=0.0)
    holders_in, holders_out = motion_input_sequence(4), motion_output_sequence(4)
    by_task = {}
    for index in range(len(dataset)):
        sample = dataset[(0, index)]
        by_task.setdefault(sample.kind, sample)
    t2m, m2t, pred, inb = (by_task[k] for k in ("t2m", "m2t", "predict", "inbetween"))
    assert t2m.text == t2m.caption + " \n " + holders_out + EOS and t2m.inputs == ()
    assert m2t.text == CAPTION_PREFIX + holders_in + " \n " + m2t.caption + EOS and m2t.outputs == ()
    assert pred.text == PREDICT_PREFIX + holders_in + " \n " + holders_out + EOS
    n = pred.frames
    assert [len(m) for m in pred.inputs + pred.outputs] == [int(0.2 * n), n - int(0.2 * n)]
    masked = holders_in + "<masked_motion>" * 4 + holders_in
    assert inb.text == INBETWEEN_PREFIX + masked + " \n " + holders_out + EOS
    n = inb.frames
    head, tail = inb.inputs
    full = inb.outputs[0]
    assert len(full) == n and len(head) == int(0.25 * n) and len(tail) == n - int(0.75 * n)
    np.testing.assert_array_equal(head, full[: len(head)])
    np.testing.assert_array_equal(tail, full[int(0.75 * n) :])


def test_template_files_hold_the_inference_prompts_and_are_checked(tmp_path):
    subtasks = {s.key: s for s in load_templates(ALL_TEMPLATES)}
    assert subtasks["Text-to-Motion/plain"].inputs == ("<Caption_Placeholder>",)
    assert CAPTION_PREFIX + "<Motion_Placeholder>" in subtasks["Motion-to-Text/caption"].inputs
    assert PREDICT_PREFIX + "<Motion_Placeholder_s1>" in subtasks["Motion-to-Motion/prediction"].inputs
    assert INBETWEEN_PREFIX + "<Motion_Placeholder_Masked>" in subtasks["Motion-to-Motion/inbetween"].inputs
    assert any("<Frame_Placeholder>" in t for t in subtasks["Text-to-Motion/caption_framelen"].inputs)
    assert len(subtasks["Text-to-Motion/caption"].inputs) >= 5
    bad = tmp_path / "bad.json"
    bad.write_text('{"G": {"s": {"class": "m2t", "input": ["<Caption_Placeholder>"], "output": ["x"]}}}')
    with pytest.raises(TemplateError, match="holds 0 motions"):
        load_templates([bad])
    bad.write_text(
        '{"G": {"s": {"class": "t2m", "input": ["<Caption_Placeholdr>"], "output": ["<Motion_Placeholder>"]}}}'
    )
    with pytest.raises(TemplateError, match="unknown placeholder"):
        load_templates([bad])


# ----------------------------------------------------------------------------------------------- labels


def test_text_labels_mask_eom_motion_tokens_and_padding():
    hold_in, hold_out = [HOLDER_INPUT_ID] * 4, [HOLDER_OUTPUT_ID] * 4
    # t2m: "walk \n <som> out×4 <eom> <eos>" + 2 pads; m2t-like: "go <som> in×4 <eom> <mask>×4 <som> in×4 <eom> x <eos>"
    t2m = [11114, 220, 198, 220, SOM_ID, *hold_out, EOM_ID, EOS_ID, EOS_ID, EOS_ID]
    m2t = [2188, SOM_ID, *hold_in, EOM_ID, *[MASKED_MOTION_ID] * 4, SOM_ID, *hold_in, EOM_ID, 87, EOS_ID]
    width = max(len(t2m), len(m2t))
    ids = torch.full((2, width), EOS_ID)
    mask = torch.zeros((2, width), dtype=torch.long)
    for row, seq in enumerate((t2m, m2t)):
        real = len(seq) - (2 if row == 0 else 0)
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, :real] = 1
    labels = text_labels(ids, mask)
    x = IGNORE
    expected_t2m = [11114, 220, 198, 220, SOM_ID, x, x, x, x, x, EOS_ID] + [x] * (width - 11)
    expected_m2t = [2188, SOM_ID, x, x, x, x, x, x, x, x, x, SOM_ID, x, x, x, x, x, 87, EOS_ID]
    assert labels[0].tolist() == expected_t2m
    assert labels[1].tolist() == expected_m2t
    masked_prompt = text_labels(ids, mask, torch.tensor([4, 0]))
    assert masked_prompt[0, :4].tolist() == [x] * 4 and masked_prompt[0, 4] == SOM_ID


def test_text_loss_is_the_shifted_cross_entropy_over_labelled_positions():
    from backend.model.config import tiny_config

    torch.manual_seed(0)
    model = build_model(tiny_config(), None, "random")
    hidden = torch.randn(2, 6, model.config.hidden_dim)
    labels = torch.tensor([[5, 7, IGNORE, 9, IGNORE, IGNORE], [1, IGNORE, 3, 4, 50258 - 1, IGNORE]])
    logits = model.lm.text_logits(hidden)
    terms = [
        torch.nn.functional.cross_entropy(logits[b, j - 1 : j], labels[b, j : j + 1])
        for b in range(2)
        for j in range(1, 6)
        if labels[b, j] != IGNORE
    ]
    expected = torch.stack(terms).mean()
    torch.testing.assert_close(text_loss(model.lm, hidden, labels), expected, rtol=1e-6, atol=1e-6)


def test_collated_labels_start_at_the_answer_when_prompts_are_masked(data_root):
    dataset = MotionTextDataset(data_root, "train", load_templates(["pretrain.json"]), seed=1)
    samples = [dataset[(0, i)] for i in range(8)]
    batch = Collate(mask_prompt=True)(samples)
    tokenizer = load_tokenizer()
    for row, sample in enumerate(samples):
        prompt = tokenizer(sample.prompt + " \n", add_special_tokens=False)["input_ids"]
        answer_start = len(prompt)
        labels, ids = batch.labels[row], batch.tokens.ids[row]
        assert (labels[:answer_start] == IGNORE).all()
        real = int(batch.tokens.attention_mask[row].sum())
        expected = ids[answer_start:real].clone()
        expected[(expected == EOM_ID) | (expected >= 50259)] = IGNORE
        assert labels[answer_start:real].tolist() == expected.tolist()
        assert (labels[real:] == IGNORE).all()
    plain = Collate()(samples)
    assert (plain.labels[:, 0] != IGNORE).all()  # prompt tokens count by default (upstream)


def test_the_caption_stage_trains_only_captions_on_their_own_tokens(data_root):
    stage = get_stage("2c")
    assert stage.mask_prompt and stage.text_weight > 0 and stage.trains == "motion"
    dataset = MotionTextDataset(data_root, "train", load_templates(list(stage.templates)), seed=1)
    samples = [dataset[(0, i)] for i in range(4)]
    assert {s.kind for s in samples} == {"m2t"}
    batch = Collate(mask_prompt=stage.mask_prompt)(samples)
    tokenizer = load_tokenizer()
    for row, sample in enumerate(samples):
        assert sample.prompt.startswith("Generate text:")
        # what the loss sees is exactly the sample's caption (then EOS), never the instruction
        kept = [int(t) for t in batch.labels[row] if t != IGNORE]
        assert kept[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(kept[:-1]).strip() == sample.answer.strip() == sample.caption.strip()


@pytest.mark.parametrize(
    ("name", "kinds_wanted"), [("2d", {"t2m", "m2t"}), ("2e", {"t2m", "m2t", "predict", "inbetween"})]
)
def test_the_joint_stages_mix_tasks_with_the_instruction_masked(data_root, name, kinds_wanted):
    stage = get_stage(name)
    assert stage.mask_prompt and stage.text_weight > 0 and stage.diff_weight > 0 and stage.trains == "motion"
    dataset = MotionTextDataset(data_root, "train", load_templates(list(stage.templates)), seed=1)
    samples = [dataset[(0, i)] for i in range(len(dataset))]
    kinds = [s.kind for s in samples]
    assert set(kinds) == kinds_wanted
    assert len({kinds.count(k) for k in kinds_wanted}) == 1 and kinds.count("m2t") > 0  # every clip once as each
    batch = Collate(mask_prompt=stage.mask_prompt)(samples)
    tokenizer = load_tokenizer()
    for row, sample in enumerate(samples):
        kept = [int(t) for t in batch.labels[row] if t != IGNORE]
        if sample.kind == "m2t":  # the caption and EOS, never "Generate text: ..."
            assert tokenizer.decode(kept[:-1]).strip() == sample.caption.strip() and kept[-1] == EOS_ID
        else:  # motion answers: the caption or instruction is the prompt, so no prompt token reaches the text loss
            assert kept[-2:] == [SOM_ID, EOS_ID] and len(kept) <= 3, tokenizer.decode(kept)


# ----------------------------------------------------------------------------------------------- stages


def test_learning_rate_groups_and_schedule():
    from backend.model.config import tiny_config

    model = build_model(tiny_config(), None, "random")
    stage = get_stage("1")
    configure_trainable(model, stage)
    optimizer = build_optimizer(model, stage)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g["name"]: (g["lr"], {names[id(p)] for p in g["params"]}) for g in optimizer.param_groups}
    assert groups["heads"][0] == 2e-4 and groups["lm"][0] == 1e-4
    assert all(n.startswith(("motion_und_head.", "diffloss.", "fake_latent")) for n in groups["heads"][1])
    assert "fake_latent" in groups["heads"][1] and "lm.transformer.wte.weight" in groups["lm"][1]
    assert not any(n.startswith("vae.") or (is_text_parameter(n) and "wte" not in n) for n in groups["lm"][1])
    assert optimizer.defaults["betas"] == (0.9, 0.99) and optimizer.defaults["weight_decay"] == 0.0
    assert stage.lr_factor(0, 100) == 1.0 and stage.lr_factor(99, 100) == pytest.approx(0.1)
    assert STAGES["3"].lr_factor(0, 100) == 0.5 and STAGES["3"].lr_factor(1, 100) == 1.0  # 2-step warm-up
    assert [STAGES[s].groups[-1].lr for s in ("2", "2b", "3")] == [1e-4, 8e-5, 1e-5]
    assert (STAGES["1"].text_weight, STAGES["1"].diff_weight) == (0.0, 1.0)
    assert (STAGES["2"].text_weight, STAGES["2"].diff_weight) == (1.0, 0.5)


def test_optimizer_update_matches_the_reference_adamw():
    """The (fused) optimizer `build_optimizer` returns takes the same steps as torch's per-tensor AdamW loop."""
    from backend.model.config import tiny_config

    model = build_model(tiny_config(), None, "random")
    stage = get_stage("2")
    configure_trainable(model, stage)
    reference = build_model(tiny_config(), None, "random")
    reference.load_state_dict(model.state_dict())
    configure_trainable(reference, stage)
    ours = build_optimizer(model, stage)
    theirs = torch.optim.AdamW(
        [p for p in reference.parameters() if p.requires_grad], lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0,
        foreach=False,
    )
    assert ours.defaults["fused"]
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(3)
    for _ in range(3):
        for mine, ref in zip(model.parameters(), reference.parameters(), strict=True):
            if mine.requires_grad:
                grad = torch.randn(mine.shape, generator=generator)
                mine.grad, ref.grad = grad.clone(), grad.clone()
        ours.step()
        theirs.step()
    for (name, mine), ref in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-7, msg=name)
    moved = max(float((p.detach() - initial[n]).abs().max()) for n, p in model.named_parameters() if p.requires_grad)
    assert moved > 1e-4  # the steps did move the weights (3 Adam steps of lr 1e-4 each)


def test_posterior_mean_cache_serves_each_motions_own_latent(data_root, tmp_path, monkeypatch):
    """Cached latents equal each motion encoded alone; a repeated motion is not encoded again; the stage's losses
    are the same with and without the cache."""
    from backend.train import step as step_module

    trainer = Trainer(_config(data_root, tmp_path, "2", posterior_mean_latents=True))
    model, cache = trainer.model, step_module.PosteriorMeanCache()
    clip = trainer.dataset.features(trainer.dataset.clips[0])
    motions = [clip[:40], clip[10:90], clip[:40], clip[:41]]  # a repeat, and a crop one frame longer
    latents = cache.encode(model, motions)
    alone = torch.cat([step_module.encode_motions(model, [m], None, sample=False) for m in motions])
    torch.testing.assert_close(latents, alone, rtol=1e-5, atol=1e-5)
    assert len(cache) == 3 and not torch.equal(latents[0], latents[3])
    calls: list[int] = []
    original = step_module.encode_motions

    def counted(model_: object, clips: list, *args: object, **kwargs: object) -> torch.Tensor:
        calls.append(len(clips))
        return original(model_, clips, *args, **kwargs)

    monkeypatch.setattr(step_module, "encode_motions", counted)
    cache.encode(model, [clip[10:90], clip[:40]])
    assert calls == []  # both seen before

    trainer.objective.eval()
    batch = trainer.collate([trainer.dataset[(0, i)] for i in range(4)])
    with torch.no_grad():
        fresh = step_module.lm_losses(model, batch, trainer.stage, torch.Generator().manual_seed(0))
        cached = step_module.lm_losses(model, batch, trainer.stage, torch.Generator().manual_seed(0), cache)
    assert calls  # the batch's motions were new to the cache
    torch.testing.assert_close(cached["loss"], fresh["loss"], rtol=1e-5, atol=1e-6)


def _evaluate(trainer: Trainer, batches: list, seed: int = 0) -> float:
    """Mean loss over fixed batches with fixed noise, in eval mode (deterministic)."""
    trainer.objective.eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return float(np.mean([float(trainer.objective(b, generator)["loss"]) for b in batches]))


@pytest.mark.parametrize("stage", ["vae", "1", "2", "3"])
def test_a_few_steps_lower_the_loss(data_root, tmp_path, stage):
    trainer = Trainer(_config(data_root, tmp_path, stage, steps=12, lr_scale=20.0))
    probe = [trainer.collate([trainer.dataset[(epoch, i)] for i in range(4)]) for epoch in (0, 1)]
    before = _evaluate(trainer, probe)
    trainer.run()
    after = _evaluate(trainer, probe)
    assert after < before, f"stage {stage}: {before:.4f} -> {after:.4f}"


def test_stage_1_changes_only_the_motion_side(data_root, tmp_path):
    trainer = Trainer(_config(data_root, tmp_path, "1", steps=1))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    after = trainer.model.state_dict()
    wte = "lm.transformer.wte.weight"
    assert torch.equal(after[wte][:SOM_ID], before[wte][:SOM_ID])  # GPT-2 rows bit-identical
    assert not torch.equal(after[wte][SOM_ID], before[wte][SOM_ID])  # <start_of_motion> learns
    for key in before:
        if key.startswith("vae.") or (is_text_parameter(key) and key != wte) or "post_processors" in key:
            assert torch.equal(after[key], before[key]), f"{key} changed"
        if ".fn.1." in key or key.startswith("diffloss."):
            assert not torch.equal(after[key], before[key]), f"{key} did not change"


def test_stage_3_trains_the_text_branch_but_not_the_vae():
    from backend.model.config import tiny_config

    model = build_model(tiny_config(), None, "random")
    hooks = configure_trainable(model, get_stage("3"))
    assert hooks == []
    for name, param in model.named_parameters():
        assert param.requires_grad == (not name.startswith("vae.") and "post_processors" not in name), name


def test_vae_posterior_noise_scales_the_sample_and_zero_is_the_mean(data_root):
    from backend.model.config import tiny_config

    model = build_model(tiny_config(), None, "random")
    clip = np.load(data_root / "new_joint_vecs" / "000001.npy")[:40]
    features, lengths = model.pad_features([clip, clip[:24]])
    with torch.no_grad():
        mu, _ = model.vae.encode_distribution(features, lengths)
        mean_recon = model.vae.decode(mu, lengths)
        expected = model.vae.reconstruction_loss(mean_recon, features[:, : mean_recon.shape[1]], lengths)

        def recon(noise: float, seed: int) -> torch.Tensor:
            generator = torch.Generator().manual_seed(seed)
            return vae_losses(model.vae, features, lengths, generator, posterior_noise=noise)["recon"]

        # No noise: the posterior mean, whatever the generator; any noise: the sample depends on the draw.
        assert torch.allclose(recon(0.0, 1), expected) and torch.allclose(recon(0.0, 2), expected)
        assert not torch.allclose(recon(1.0, 1), recon(1.0, 2))
        assert not torch.allclose(recon(0.5, 1), expected)


@pytest.mark.parametrize(
    ("part", "dims", "weight"),
    [("root", list(range(4)), "root_weight"), ("limbs", sorted(LIMB_DIMS), "limb_weight")],
    ids=["root", "limbs"],
)
def test_a_weighted_vae_loss_covers_its_dims_and_adds_to_the_vae_stage_total(data_root, part, dims, weight):
    """`root` is SmoothL1 over dims 0..3, `limbs` over `LIMB_DIMS`, valid frames only (torch's own smooth_l1_loss on
    the sliced, unpadded frames as the oracle), and a stage's weight adds exactly weight x that loss to the total."""
    from dataclasses import replace
    from types import SimpleNamespace

    from backend.model.config import tiny_config
    from backend.train.step import vae_stage_losses

    model = build_model(tiny_config(), None, "random")
    clip = np.load(data_root / "new_joint_vecs" / "000001.npy")[:40]
    features, lengths = model.pad_features([clip, clip[:24]])
    with torch.no_grad():
        parts = vae_losses(model.vae, features, lengths, None, posterior_noise=0.0)
        mu, _ = model.vae.encode_distribution(features, lengths)
        recon = model.vae.decode(mu, lengths)
        pred = torch.cat([recon[0, :40, dims], recon[1, :24, dims]])
        true = torch.cat([features[0, :40, dims], features[1, :24, dims]])
        assert torch.allclose(parts[part], torch.nn.functional.smooth_l1_loss(pred, true), atol=1e-6)

        batch = SimpleNamespace(flat_outputs=[clip, clip[:24]])
        stage = replace(get_stage("vae"), posterior_noise=0.0)
        plain = vae_stage_losses(model, batch, stage, None)  # type: ignore[arg-type]
        weighted = vae_stage_losses(model, batch, replace(stage, **{weight: 2.5}), None)  # type: ignore[arg-type]
        assert float(parts[part]) > 0
        assert torch.allclose(weighted["loss"] - plain["loss"], 2.5 * parts[part], atol=1e-5)


def test_the_limb_dims_are_the_far_joints_positions_and_velocities(data_root):
    """`LIMB_DIMS`, worked out by hand from the 263-dim layout (root 4, positions of joints 1..21 from dim 4, 6D
    rotations from 67, velocities of joints 0..21 from 193): knees, ankles, feet, elbows and wrists; and
    `train --limb-weight` reaches the VAE stage."""
    right_ankle, left_wrist = 8, 20
    expected = {25, 26, 27, 217, 218, 219} | {61, 62, 63, 253, 254, 255}  # 4+3*(j-1)+k, 193+3*j+k
    assert expected <= set(LIMB_DIMS) and len(set(LIMB_DIMS)) == len(LIMB_DIMS) == 60
    assert not set(LIMB_DIMS) & set(range(67, 193)) and min(LIMB_DIMS) >= 4  # no rotations, no root
    assert {4 + 3 * (right_ankle - 1), 193 + 3 * left_wrist} <= set(LIMB_DIMS)
    parser = argparse.ArgumentParser()
    add_train_command(parser.add_subparsers())
    args = parser.parse_args(["train", "--stage", "vae", "--data", str(data_root), "--limb-weight", "5"])
    assert args.limb_weight == 5.0


def test_train_takes_the_root_weight_to_the_vae_stage(data_root, tmp_path):
    parser = argparse.ArgumentParser()
    add_train_command(parser.add_subparsers())
    args = parser.parse_args(["train", "--stage", "vae", "--data", str(data_root), "--out", "x", "--root-weight", "4"])
    assert args.root_weight == 4.0
    trainer = Trainer(_config(data_root, tmp_path / "r", "vae", steps=1, root_weight=4.0))
    assert trainer.stage.root_weight == 4.0 and get_stage("vae").root_weight == 0.0


def test_the_log_records_each_vae_loss_part_and_the_total_is_their_weighted_sum(data_root, tmp_path):
    weights = dict(root_weight=4.0, limb_weight=2.0)
    trainer = Trainer(_config(data_root, tmp_path / "v", "vae", steps=2, **weights))
    trainer.run()
    stage = trainer.stage
    with open(tmp_path / "v" / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    for row in rows:
        part = {k: float(row[k]) for k in ("recon", "joints", "root", "limbs", "kl")}
        assert all(math.isfinite(v) and v > 0 for v in part.values()), row
        total = (
            part["recon"]
            + stage.joints_weight * part["joints"]
            + stage.kl_weight * part["kl"]
            + 4.0 * part["root"]
            + 2.0 * part["limbs"]
        )
        assert float(row["loss"]) == pytest.approx(total, rel=1e-5)
    Trainer(_config(data_root, tmp_path / "t", "1", steps=1)).run()
    with open(tmp_path / "t" / "train_log.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["root"] == row["limbs"] == "" and math.isfinite(float(row["diff"]))


@pytest.mark.parametrize("stage", ["vae", "2"])
def test_several_latent_tokens_train(data_root, tmp_path, monkeypatch, stage):
    """A VAE with 2 latent tokens per motion: the VAE stage and the all-task stage (inputs fill the holders from
    both tokens, the diffusion head learns both) lower their loss."""
    from dataclasses import replace

    from backend.model.config import PRESETS, tiny_config

    monkeypatch.setitem(PRESETS, "tiny", lambda: replace(tiny_config(), vae=replace(tiny_config().vae, latent_size=2)))
    trainer = Trainer(_config(data_root, tmp_path, stage, steps=12, lr_scale=20.0))
    assert trainer.model.vae.config.latent_size == 2
    probe = [trainer.collate([trainer.dataset[(epoch, i)] for i in range(4)]) for epoch in (0, 1)]
    before = _evaluate(trainer, probe)
    trainer.run()
    after = _evaluate(trainer, probe)
    assert after < before, f"stage {stage}: {before:.4f} -> {after:.4f}"


# ----------------------------------------------------------------------------------------------- resume


def test_resume_reproduces_the_uninterrupted_run(data_root, tmp_path):
    settings = dict(steps=4, accumulate=2, save_every=2)  # 5 batches an epoch: step 3 crosses into epoch 1
    straight = Trainer(_config(data_root, tmp_path / "a", "2", **settings)).run()
    first = Trainer(_config(data_root, tmp_path / "b", "2", **settings))
    first.run(until=2)
    assert latest_checkpoint(tmp_path / "b").name == "step_00000002"
    resumed_trainer = Trainer(_config(data_root, tmp_path / "b", "2", resume=True, **settings))
    assert resumed_trainer.step == 2 and resumed_trainer.resumed_from is not None
    resumed = resumed_trainer.run()
    assert [r["step"] for r in resumed] == [3, 4]
    for ours, reference in zip(resumed, straight[2:], strict=True):
        assert abs(ours["loss"] - reference["loss"]) <= 1e-6, (ours, reference)
        assert ours["epoch"] == reference["epoch"]
    with open(tmp_path / "b" / "train_log.csv", newline="") as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [1, 2, 3, 4]
    state = torch.load(latest_checkpoint(tmp_path / "b") / "trainer_state.pt", weights_only=True)
    assert state["step"] == 4 and state["stage"] == "2"


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "state.pt"
    target.write_bytes(b"old")

    def failing(path: Path) -> None:
        path.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


@pytest.mark.parametrize("writer", ["torch.save", "save_safetensors"])
def test_interrupted_checkpoint_leaves_no_partial_files(data_root, tmp_path, monkeypatch, writer):
    trainer = Trainer(_config(data_root, tmp_path, "1", steps=3, save_every=1))
    trainer.run(until=1)
    good = latest_checkpoint(tmp_path)

    def interrupted(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise KeyboardInterrupt

    if writer == "torch.save":
        monkeypatch.setattr(trainer_module.torch, "save", interrupted)
    else:
        monkeypatch.setattr(trainer_module, "save_safetensors", lambda model, config, path: interrupted(model, path))
    with pytest.raises(KeyboardInterrupt):
        trainer.run(until=2)
    assert latest_checkpoint(tmp_path) == good
    leftovers = [p for p in tmp_path.rglob("*") if "tmp" in p.name or p.name == "step_00000002"]
    assert leftovers == []
    assert not (tmp_path / "model.safetensors").exists()
    read_safetensors(good / "model.safetensors")  # the previous checkpoint is intact


# ----------------------------------------------------------------------------------------------- CLI


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="motiongpt3")
    add_train_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_trains_three_steps_and_chains_stages(data_root, tmp_path, capsys):
    common = ["--data", str(data_root), "--batch-size", "4", "--seed", "1", "--no-progress"]
    out = tmp_path / "s1"
    args = _parse(
        ["train", "--stage", "1", "--preset", "tiny", "--steps", "3", "--save-every", "2", *common, "--out", str(out)]
    )
    assert args.run(args) == 0
    with open(out / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["step"] for r in rows] == ["1", "2", "3"] and all(float(r["samples_per_s"]) > 0 for r in rows)
    assert latest_checkpoint(out).name == "step_00000003"
    config, weights = read_safetensors(out / "model.safetensors")
    assert config.name == "tiny"
    build_model(config, weights, "stage 1 output")
    assert "--init" in capsys.readouterr().out

    init = str(out / "model.safetensors")
    args = _parse(["train", "--stage", "2", "--init", init, "--steps", "1", *common, "--out", str(tmp_path / "s2")])
    assert args.run(args) == 0
    assert (tmp_path / "s2" / "model.safetensors").is_file()
