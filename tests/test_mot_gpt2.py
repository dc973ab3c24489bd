"""MoT GPT-2 backbone: equals HF GPT-2 on text, routes per branch, is causal, padding- and cache-invariant."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from reference import STATE_DICT_TSV, require
from transformers import GPT2Config, GPT2LMHeadModel

from backend.model.config import EOS_ID, MOTION_TOKEN_START, BackboneConfig, official_config, tiny_config
from backend.model.mot_gpt2 import TEXT_EMBEDDING_ALIASES, MoTGPT2

PREFIX = "lm.language_model."
ATOL = 1e-5


def randomize(model: MoTGPT2, seed: int = 0) -> MoTGPT2:
    """Perturb every parameter (LayerNorms too) so that text and motion branches differ everywhere."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=gen))
    return model


@pytest.fixture
def config() -> BackboneConfig:
    return tiny_config().backbone


@pytest.fixture
def model(config: BackboneConfig) -> MoTGPT2:
    torch.manual_seed(0)
    return randomize(MoTGPT2(config)).eval()


def random_embeds(b: int, s: int, d: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, s, d, generator=torch.Generator().manual_seed(seed))


def arange_positions(b: int, s: int) -> torch.Tensor:
    return torch.arange(s).expand(b, s)


def run(model: MoTGPT2, embeds: torch.Tensor, types: torch.Tensor, mask=None, positions=None) -> torch.Tensor:
    b, s, _ = embeds.shape
    mask = torch.ones(b, s, dtype=torch.long) if mask is None else mask
    positions = arange_positions(b, s) if positions is None else positions
    with torch.no_grad():
        hidden, past = model(embeds, types, mask, positions)
    assert past is None
    return hidden


def naive_reference(model: MoTGPT2, embeds, types, mask, positions) -> torch.Tensor:
    """Independent float64 oracle of spec §5.3: per-position weight choice, explicit masked softmax attention."""
    cfg = model.config
    sd = {k: v.double() for k, v in model.state_dict().items()}
    n_head, d = cfg.n_head, cfg.n_embd
    hd = d // n_head

    def gelu_new(x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))

    def per_position(fn, x, seq_types):
        return torch.stack([fn(x[t], int(seq_types[t])) for t in range(x.shape[0])])

    out = []
    for b in range(embeds.shape[0]):
        ty = types[b]
        h = embeds[b].double() + sd["transformer.wpe.weight"][positions[b]]
        s = h.shape[0]
        for i in range(cfg.n_layer):
            p = f"transformer.h.{i}."

            def ln(x, m, name, p=p):
                w, bias = sd[f"{p}{name}.fn.{m}.weight"], sd[f"{p}{name}.fn.{m}.bias"]
                return torch.nn.functional.layer_norm(x, (d,), w, bias, cfg.layer_norm_epsilon)

            def conv(x, m, name, p=p):
                return x @ sd[f"{p}{name}.fn.{m}.weight"] + sd[f"{p}{name}.fn.{m}.bias"]

            qkv = per_position(lambda x, m: conv(ln(x, m, "ln_1"), m, "c_attn"), h, ty)
            q, k, v = (t.view(s, n_head, hd).transpose(0, 1) for t in qkv.split(d, dim=-1))
            scores = q @ k.transpose(1, 2) / math.sqrt(hd)
            allowed = torch.tril(torch.ones(s, s, dtype=torch.bool)) & mask[b].bool()[None, :]
            scores = scores.masked_fill(~allowed, float("-inf"))
            attn = (scores.softmax(-1).nan_to_num(0.0) @ v).transpose(0, 1).reshape(s, d)
            h = h + per_position(lambda x, m: conv(x, m, "c_proj"), attn, ty)

            def mlp(x, m, p=p):
                a = ln(x, m, "ln_2")
                w1, b1 = sd[f"{p}mlp.fn.{m}.c_fc.weight"], sd[f"{p}mlp.fn.{m}.c_fc.bias"]
                w2, b2 = sd[f"{p}mlp.fn.{m}.c_proj.weight"], sd[f"{p}mlp.fn.{m}.c_proj.bias"]
                return gelu_new(a @ w1 + b1) @ w2 + b2

            h = h + per_position(mlp, h, ty)
        out.append(
            per_position(
                lambda x, m: torch.nn.functional.layer_norm(
                    x, (d,), sd[f"transformer.ln_f.fn.{m}.weight"], sd[f"transformer.ln_f.fn.{m}.bias"]
                ),
                h,
                ty,
            )
        )
    return torch.stack(out).float()


def hf_gpt2(model: MoTGPT2) -> GPT2LMHeadModel:
    hf = GPT2LMHeadModel(model.config.gpt2_config()).eval()
    hf.load_state_dict(model.to_gpt2_state_dict())
    return hf


# ------------------------------------------------------------------------------------------- HF GPT-2 oracle


def test_all_text_equals_hf_gpt2(model: MoTGPT2) -> None:
    hf = hf_gpt2(model)
    ids = torch.randint(0, model.config.text_vocab_size, (2, 9), generator=torch.Generator().manual_seed(3))
    types = torch.zeros_like(ids)
    with torch.no_grad():
        hidden, _ = model(model.embed_tokens(ids, types), types, torch.ones_like(ids), arange_positions(2, 9))
        ref = hf(input_ids=ids, output_hidden_states=True)
    torch.testing.assert_close(hidden, ref.hidden_states[-1], atol=ATOL, rtol=0)
    torch.testing.assert_close(model.text_logits(hidden), ref.logits, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("side", ["right", "left"])
def test_all_text_equals_hf_gpt2_with_padding(model: MoTGPT2, side: str) -> None:
    hf = hf_gpt2(model)
    ids = torch.randint(0, EOS_ID, (3, 8), generator=torch.Generator().manual_seed(4))
    lengths = [8, 5, 2]
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        if side == "right":
            mask[row, :n] = 1
        else:
            mask[row, 8 - n :] = 1
    ids = ids.masked_fill(mask == 0, EOS_ID)
    positions = (mask.cumsum(-1) - 1).clamp(min=0) if side == "left" else arange_positions(3, 8)
    types = torch.zeros_like(ids)
    with torch.no_grad():
        hidden, _ = model(model.embed_tokens(ids, types), types, mask, positions)
        ref = hf(input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=True)
    real = mask.bool()
    torch.testing.assert_close(hidden[real], ref.hidden_states[-1][real], atol=ATOL, rtol=0)
    torch.testing.assert_close(model.text_logits(hidden)[real], ref.logits[real], atol=ATOL, rtol=1e-5)
    assert torch.isfinite(hidden).all()


def test_gpt2_state_dict_round_trip(model: MoTGPT2, config: BackboneConfig) -> None:
    torch.manual_seed(5)
    other = MoTGPT2(config)
    motion_before = {k: v.clone() for k, v in other.state_dict().items() if ".fn.1." in k or k.endswith("ors.1.weight")}
    other.load_gpt2_text_branch(model.to_gpt2_state_dict())
    ours, theirs = model.state_dict(), other.state_dict()
    for key, value in theirs.items():
        if key in motion_before:
            torch.testing.assert_close(value, motion_before[key], atol=0, rtol=0)  # motion branch untouched
        else:
            torch.testing.assert_close(value, ours[key], atol=0, rtol=0)


def test_load_gpt2_resizes_vocabulary_with_mean_rows(config: BackboneConfig) -> None:
    small = GPT2Config(**{**config.gpt2_config().to_dict(), "vocab_size": config.text_vocab_size - 2})
    hf = GPT2LMHeadModel(small)
    model = MoTGPT2(config)
    model.load_gpt2_text_branch(hf.state_dict())
    wte, src = model.transformer.wte.weight.detach(), hf.transformer.wte.weight.detach()
    torch.testing.assert_close(wte[: src.shape[0]], src, atol=0, rtol=0)
    torch.testing.assert_close(wte[src.shape[0] :], src.mean(0).expand(2, -1), atol=1e-7, rtol=0)


def test_load_gpt2_rejects_unknown_and_missing_keys(model: MoTGPT2) -> None:
    state = model.to_gpt2_state_dict()
    with pytest.raises(KeyError, match="unexpected"):
        model.load_gpt2_text_branch({**state, "transformer.h.99.ln_1.weight": state["transformer.h.0.ln_1.weight"]})
    del state["transformer.ln_f.bias"]
    with pytest.raises(KeyError, match=r"ln_f\.bias"):
        model.load_gpt2_text_branch(state)


# ------------------------------------------------------------------------------------- official key contract


def official_rows() -> dict[str, list[int]]:
    rows = {}
    for line in require(STATE_DICT_TSV).read_text().splitlines()[1:]:
        key, shape, _ = line.split("\t")
        if key.startswith(PREFIX):
            rows[key.removeprefix(PREFIX)] = [int(n) for n in shape.strip("[]").split(",") if n.strip()]
    return rows


def test_official_state_dict_matches_checkpoint_keys() -> None:
    with torch.device("meta"):
        model = MoTGPT2(official_config().backbone)
    ours = {key: list(value.shape) for key, value in model.state_dict().items()}
    rows = official_rows()
    for alias in TEXT_EMBEDDING_ALIASES:
        assert rows.pop(alias) == rows["transformer.wte.weight"]
    assert ours == rows


def test_official_branch_parameter_counts() -> None:
    with torch.device("meta"):
        model = MoTGPT2(official_config().backbone)
    text = motion = 0
    for name, param in model.named_parameters():  # named_parameters yields each tensor once
        if ".fn.1." in name or name.startswith(("pre_processors.1.", "post_processors.1.")):
            motion += param.numel()
        else:
            assert ".fn.0." in name or name in ("transformer.wte.weight", "transformer.wpe.weight"), name
            text += param.numel()
    assert text == 124_441_344
    assert motion == 85_065_216


# ------------------------------------------------------------------------------------------------- routing

MIXED = torch.tensor([[0, 0, 1, 1, 0, 1, 0, 0], [1, 0, 0, 1, 1, 1, 0, 1]])


def test_mixed_types_equal_naive_per_position_reference(model: MoTGPT2) -> None:
    embeds = random_embeds(2, 8, model.config.n_embd)
    mask = torch.tensor([[1] * 8, [1] * 6 + [0] * 2])
    positions = arange_positions(2, 8)
    hidden = run(model, embeds, MIXED, mask, positions)
    ref = naive_reference(model, embeds, MIXED, mask, positions)
    real = mask.bool()
    torch.testing.assert_close(hidden[real], ref[real], atol=ATOL, rtol=0)


def test_swapping_branch_weights_and_types_is_identity(model: MoTGPT2, config: BackboneConfig) -> None:
    """fn.0 <-> fn.1 with every type flipped must give the same states; fails if any module ignores the type."""
    swapped = MoTGPT2(config).eval()
    state = model.state_dict()
    swap = {".fn.0.": ".fn.1.", ".fn.1.": ".fn.0."}
    for key in list(state):
        for a, b in swap.items():
            if a in key:
                state = {**state, key.replace(a, b): model.state_dict()[key]}
    swapped.load_state_dict(state)
    embeds = random_embeds(2, 8, config.n_embd)
    torch.testing.assert_close(run(swapped, embeds, 1 - MIXED), run(model, embeds, MIXED), atol=ATOL, rtol=0)
    assert not torch.allclose(run(model, embeds, 1 - MIXED), run(model, embeds, MIXED), atol=1e-3)


def perturb_branch(model: MoTGPT2, branch: int) -> MoTGPT2:
    other = MoTGPT2(model.config).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name, param in other.named_parameters():
            if f".fn.{branch}." in name:
                param.add_(0.5)
    return other


@pytest.mark.parametrize(
    ("types", "branch", "first_affected"),
    [
        ([0, 0, 1, 0, 1, 0], 1, 2),  # motion weights: text prefix untouched, motion position and all later change
        ([1, 1, 1, 0, 0, 1], 0, 3),  # text weights: motion prefix untouched (its own MLP/LN/QKV are motion's)
        ([0, 1, 0, 0, 0, 0], 1, 1),  # a single motion token reaches every later text token through attention
    ],
)
def test_branch_weights_affect_own_positions_and_later_only(
    model: MoTGPT2, types: list[int], branch: int, first_affected: int
) -> None:
    type_ids = torch.tensor([types])
    embeds = random_embeds(1, len(types), model.config.n_embd)
    before = run(model, embeds, type_ids)[0]
    after = run(perturb_branch(model, branch), embeds, type_ids)[0]
    torch.testing.assert_close(after[:first_affected], before[:first_affected], atol=0, rtol=0)
    changed = (after - before).abs().amax(-1) > 1e-3
    assert changed[first_affected:].all(), changed


def test_causal_over_mixed_types(model: MoTGPT2) -> None:
    gen = torch.Generator().manual_seed(7)
    types = MIXED.clone()
    ids = torch.where(types == 1, MOTION_TOKEN_START + torch.randint(0, 4, (2, 8), generator=gen), 0)
    ids = ids + (types == 0) * torch.randint(0, EOS_ID, (2, 8), generator=gen)
    t = 4
    ids2, types2 = ids.clone(), types.clone()
    types2[:, t + 1 :] = 1 - types2[:, t + 1 :]
    ids2[:, t + 1 :] = torch.where(types2[:, t + 1 :] == 1, MOTION_TOKEN_START + 3, 123)
    a = run(model, model.embed_tokens(ids, types), types)
    b = run(model, model.embed_tokens(ids2, types2), types2)
    torch.testing.assert_close(b[:, : t + 1], a[:, : t + 1], atol=1e-6, rtol=0)
    assert not torch.allclose(b[:, t + 1 :], a[:, t + 1 :], atol=1e-3)


# ------------------------------------------------------------------------------------------------- padding


def test_right_padded_batch_equals_single_runs(model: MoTGPT2) -> None:
    lengths, s = [8, 5, 3], 8
    embeds = random_embeds(3, s, model.config.n_embd)
    types = torch.tensor([[0, 1, 1, 0, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]])
    mask = (torch.arange(s)[None] < torch.tensor(lengths)[:, None]).long()
    batch = run(model, embeds, types, mask, arange_positions(3, s))
    for row, n in enumerate(lengths):
        single = run(model, embeds[row : row + 1, :n], types[row : row + 1, :n])
        torch.testing.assert_close(batch[row, :n], single[0], atol=ATOL, rtol=0)


def test_left_padding_with_cumsum_positions_equals_unpadded(model: MoTGPT2) -> None:
    n, pad = 6, 3
    embeds = random_embeds(1, n, model.config.n_embd)
    types = torch.tensor([[0, 1, 1, 0, 1, 0]])
    mask = torch.tensor([[0] * pad + [1] * n])
    padded = torch.cat([random_embeds(1, pad, model.config.n_embd, seed=9), embeds], dim=1)
    padded_types = torch.cat([torch.tensor([[0, 1, 0]]), types], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    left = run(model, padded, padded_types, mask, positions)
    torch.testing.assert_close(left[:, pad:], run(model, embeds, types), atol=ATOL, rtol=0)
    assert torch.isfinite(left).all()  # fully padded query rows still give finite values


# ------------------------------------------------------------------------------------------------- KV cache


def test_kv_cache_decoding_equals_full_recomputation(model: MoTGPT2) -> None:
    """Left-padded mixed-type prefill, then one token per step (text and motion) with the cache."""
    gen = torch.Generator().manual_seed(11)
    d, prefill, steps = model.config.n_embd, 7, 5
    total = prefill + steps
    embeds = torch.randn(2, total, d, generator=gen)
    types = torch.randint(0, 2, (2, total), generator=gen)
    mask = torch.ones(2, total, dtype=torch.long)
    mask[1, :3] = 0  # row 1 is left-padded by 3
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    full = run(model, embeds, types, mask, positions)

    with torch.no_grad():
        hidden, past = model(
            embeds[:, :prefill], types[:, :prefill], mask[:, :prefill], positions[:, :prefill], use_cache=True
        )
        outputs = [hidden]
        for t in range(prefill, total):
            step = slice(t, t + 1)
            hidden, past = model(embeds[:, step], types[:, step], mask[:, : t + 1], positions[:, step], past, True)
            outputs.append(hidden)
    assert len(past) == model.config.n_layer
    assert past[0][0].shape == (2, model.config.n_head, total, d // model.config.n_head)
    cached = torch.cat(outputs, dim=1)
    real = mask.bool()
    torch.testing.assert_close(cached[real], full[real], atol=ATOL, rtol=0)


def test_cache_rejects_mask_without_past_positions(model: MoTGPT2) -> None:
    embeds = random_embeds(1, 3, model.config.n_embd)
    types = torch.zeros(1, 3, dtype=torch.long)
    with torch.no_grad():
        _, past = model(embeds, types, use_cache=True)
        with pytest.raises(ValueError, match="past"):
            model(embeds[:, :1], types[:, :1], torch.ones(1, 1), torch.tensor([[3]]), past)


# ------------------------------------------------------------------------------------- embeddings and init


def test_embed_tokens_routes_ids_to_their_tables(model: MoTGPT2) -> None:
    ids = torch.tensor([[15, EOS_ID, 50257, 50258, 50259, 50260, 50261, 50262]])
    emb = model.embed_tokens(ids)
    wte, motion = model.transformer.wte.weight, model.pre_processors["1"].weight
    expected = torch.cat([wte[[15, EOS_ID, 50257, 50258]], motion[[0, 1, 2, 3]]])
    torch.testing.assert_close(emb[0], expected, atol=0, rtol=0)
    with pytest.raises(ValueError, match="vocabulary"):
        model.embed_tokens(ids, torch.ones_like(ids))  # text ids are not motion-branch ids


def test_init_weights_motion_only(config: BackboneConfig) -> None:
    model = randomize(MoTGPT2(config))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.init_weights(motion_only=True)
    after = model.state_dict()
    for key, value in after.items():
        is_motion = ".fn.1." in key or key.startswith(("pre_processors.", "post_processors."))
        assert torch.equal(value, before[key]) != is_motion, key
    assert not after["pre_processors.1.weight"][config.motion_padding_idx].any()
    assert torch.equal(after["transformer.ln_f.fn.1.weight"], torch.ones(config.n_embd))
    assert torch.equal(after["transformer.h.0.c_attn.fn.1.bias"], torch.zeros(3 * config.n_embd))
    std = after["transformer.h.0.mlp.fn.1.c_fc.weight"].std().item()
    assert 0.015 < std < 0.025


def test_dropout_only_in_training(config: BackboneConfig) -> None:
    model = MoTGPT2(dataclasses.replace(config, dropout=0.1))
    embeds = random_embeds(1, 6, config.n_embd)
    types = torch.tensor([[0, 1, 0, 1, 1, 0]])
    model.train()
    assert not torch.equal(model(embeds, types)[0], model(embeds, types)[0])
    model.eval()
    torch.testing.assert_close(run(model, embeds, types), run(model, embeds, types), atol=0, rtol=0)


def test_gradients_reach_only_the_branches_in_use(model: MoTGPT2) -> None:
    embeds = random_embeds(1, 5, model.config.n_embd).requires_grad_()
    hidden, _ = model(embeds, torch.zeros(1, 5, dtype=torch.long))
    hidden.square().sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(grads[name] is None for name in grads if ".fn.1." in name)  # all-text input: motion branch idle
    assert all(grads[name].abs().sum() > 0 for name in grads if ".fn.0." in name)
    model.zero_grad(set_to_none=True)
    hidden, _ = model(embeds, torch.tensor([[0, 1, 0, 1, 1]]))
    hidden.square().sum().backward()
    assert all(p.grad.abs().sum() > 0 for name, p in model.named_parameters() if ".fn." in name), "both branches"
