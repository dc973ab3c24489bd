"""Mixture-of-Transformers GPT-2: a GPT-2 text branch and a same-sized motion branch sharing one causal attention.

MOTIONGPT3_SPEC.md §5. One residual stream; every position t runs the weights of its branch b(t) (type id 0 text,
1 motion) for ln_1, c_attn, c_proj, ln_2, mlp and ln_f, while the attention softmax runs jointly over all
positions of both modalities in every layer. `wpe` is shared. Parameter names follow the upstream checkpoint
(`lm.language_model.` stripped), so loading it is prefix stripping plus dropping the aliases of `transformer.wte`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional
from transformers.models.gpt2.modeling_gpt2 import GPT2MLP
from transformers.pytorch_utils import Conv1D

from backend.model.config import MOTION_TOKEN_START, BackboneConfig

TEXT, MOTION = 0, 1

# Checkpoint keys (below `lm.language_model.`) that are the same tensor as `transformer.wte.weight` (§8.3):
# the tied LM head and the text entries of upstream's pre/post processors. This module stores `wte` once.
TEXT_EMBEDDING_ALIASES = ("lm_head.weight", "pre_processors.0.weight", "post_processors.0.weight")

# One layer's per-branch module names: ours (`<name>.fn.0` is text) -> transformers' GPT2Block names (§8.4).
_GPT2_LAYER_NAMES = {"ln_1": "ln_1", "c_attn": "attn.c_attn", "c_proj": "attn.c_proj", "ln_2": "ln_2", "mlp": "mlp"}

KVCache = tuple[tuple[torch.Tensor, torch.Tensor], ...]  # per layer (k, v), each [B, H, S_past, head_dim]


@dataclass(frozen=True)
class Routing:
    """Which flat positions (b * S + s) each branch runs on; built once per forward and shared by every layer.

    `only` is TEXT or MOTION when the whole batch is one modality (then no gather/scatter at all), else None.
    Building it costs one host sync; the per-layer gathers then run on fixed index tensors.
    """

    only: int | None
    text_index: torch.Tensor | None = None
    motion_index: torch.Tensor | None = None

    @classmethod
    def from_types(cls, type_ids: torch.Tensor) -> Routing:
        is_motion = (type_ids == MOTION).flatten()
        n_motion = int(is_motion.sum())
        if n_motion in (0, is_motion.numel()):
            return cls(only=MOTION if n_motion else TEXT)
        return cls(None, (~is_motion).nonzero().squeeze(1), is_motion.nonzero().squeeze(1))


class ModalityPair(nn.Module):
    """Two same-shaped modules, `fn.0` for text and `fn.1` for motion; each position goes through its own.

    Routing is gather/scatter: each branch runs only on its own positions (index_select, then index_copy into
    the output), so compute is proportional to each modality's token count, with no 2x cost for running both
    branches everywhere. All modules routed here act per position, so this equals per-position weight choice.
    """

    def __init__(self, text: nn.Module, motion: nn.Module) -> None:
        super().__init__()
        self.fn = nn.ModuleList([text, motion])

    def forward(self, x: torch.Tensor, routing: Routing) -> torch.Tensor:
        """x [B, S, d_in] -> [B, S, d_out]."""
        if routing.only is not None:
            return self.fn[routing.only](x)
        flat = x.reshape(-1, x.shape[-1])
        text_out = self.fn[TEXT](flat.index_select(0, routing.text_index))  # [N_text, d_out]
        motion_out = self.fn[MOTION](flat.index_select(0, routing.motion_index))  # [N_motion, d_out]
        out = text_out.new_empty(flat.shape[0], text_out.shape[-1])
        out = out.index_copy(0, routing.text_index, text_out).index_copy(0, routing.motion_index, motion_out)
        return out.view(*x.shape[:-1], -1)


class MoTBlock(nn.Module):
    """One pre-LN GPT-2 layer with per-branch weights and a joint causal attention over both modalities."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        d, eps, gpt2 = config.n_embd, config.layer_norm_epsilon, config.gpt2_config()
        self.n_head = config.n_head
        self.attn_dropout = config.dropout
        self.ln_1 = ModalityPair(nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps))
        self.c_attn = ModalityPair(Conv1D(3 * d, d), Conv1D(3 * d, d))  # -> q | k | v, heads contiguous
        self.c_proj = ModalityPair(Conv1D(d, d), Conv1D(d, d))
        self.resid_dropout = nn.Dropout(config.dropout)
        self.ln_2 = ModalityPair(nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps))
        self.mlp = ModalityPair(GPT2MLP(config.n_inner, gpt2), GPT2MLP(config.n_inner, gpt2))  # ends in dropout

    def forward(
        self,
        h: torch.Tensor,
        routing: Routing,
        attn_mask: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
        row_lengths: list[int] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """h [B, S, D]; attn_mask [B, 1, S, S_past + S] bool (True = may attend) -> (h, (k, v) incl. past).

        `row_lengths` (right-padded rows without a cache): each row attends over its own real tokens only, in a
        call of its own length, so its numbers are those of the prompt alone (attention over masked padding
        keys rounds differently as the padded width changes); padded positions get zeros."""
        b, s, d = h.shape
        q, k, v = self.c_attn(self.ln_1(h, routing), routing).split(d, dim=-1)
        q, k, v = (t.view(b, s, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))  # [B, H, S, hd]
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        dropout = self.attn_dropout if self.training else 0.0
        # Scale 1/sqrt(head_dim) is SDPA's default, as in GPT-2.
        if row_lengths is None:
            o = functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        else:
            o = q.new_zeros(q.shape)
            for row, n in enumerate(row_lengths):
                o[row : row + 1, :, :n] = functional.scaled_dot_product_attention(
                    q[row : row + 1, :, :n],
                    k[row : row + 1, :, :n],
                    v[row : row + 1, :, :n],
                    attn_mask=attn_mask[row : row + 1, :, :n, :n],
                    dropout_p=dropout,
                )
        o = o.transpose(1, 2).reshape(b, s, d)
        h = h + self.resid_dropout(self.c_proj(o, routing))
        h = h + self.mlp(self.ln_2(h, routing), routing)
        return h, (k, v)


class MoTTransformer(nn.Module):
    """Embedding tables, the layer stack and the per-branch final norm (the upstream `transformer.` prefix)."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        d, eps = config.n_embd, config.layer_norm_epsilon
        self.wte = nn.Embedding(config.text_vocab_size, d)
        self.wpe = nn.Embedding(config.n_positions, d)  # shared by both branches
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(MoTBlock(config) for _ in range(config.n_layer))
        self.ln_f = ModalityPair(nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps))


class MoTGPT2(nn.Module):
    """The MoT GPT-2 backbone (`lm.language_model` of the checkpoint, without its aliases of `wte`).

    State-dict keys: `transformer.{wte,wpe}`, `transformer.h.{i}.{ln_1,c_attn,c_proj,ln_2,mlp}.fn.{0,1}.*`,
    `transformer.ln_f.fn.{0,1}.*`, `pre_processors.1.weight` (motion embedding [6, D], row 1 = padding) and
    `post_processors.1.weight` (motion logits head [6, D], unused upstream). The text LM head is tied to `wte`.
    """

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = MoTTransformer(config)
        d = config.n_embd
        # ModuleDicts keyed "1" give the upstream names; entry "0" (text) is `transformer.wte` itself (not stored).
        self.pre_processors = nn.ModuleDict(
            {"1": nn.Embedding(config.motion_vocab_size, d, padding_idx=config.motion_padding_idx)}
        )
        self.post_processors = nn.ModuleDict({"1": nn.Linear(d, config.motion_vocab_size, bias=False)})
        self.init_weights()

    @property
    def motion_embedding(self) -> nn.Embedding:
        return self.pre_processors["1"]

    @property
    def motion_head(self) -> nn.Linear:
        return self.post_processors["1"]

    # ----------------------------------------------------------------------------------------------- weights

    @torch.no_grad()
    def init_weights(self, motion_only: bool = False) -> None:
        """GPT-2 initialisation (transformers' `GPT2PreTrainedModel._init_weights`).

        Linear / Conv1D / Embedding weights N(0, 0.02), biases 0, LayerNorm 1 / 0, the motion padding row 0, and
        the two residual output projections (`c_proj`, `mlp.c_proj`) N(0, 0.02 / sqrt(2 * n_layer)).
        `motion_only` re-initialises just the motion branch (`fn.1`, motion embedding and head), as upstream does
        after copying GPT-2 into the text branch (§5.2).
        """
        std = 0.02
        resid_std = std / (2 * self.config.n_layer) ** 0.5
        branches = (MOTION,) if motion_only else (TEXT, MOTION)

        def conv(module: Conv1D, weight_std: float) -> None:
            nn.init.normal_(module.weight, std=weight_std)
            nn.init.zeros_(module.bias)

        def norm(module: nn.LayerNorm) -> None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

        for branch in branches:
            for block in self.transformer.h:
                norm(block.ln_1.fn[branch])
                conv(block.c_attn.fn[branch], std)
                conv(block.c_proj.fn[branch], resid_std)
                norm(block.ln_2.fn[branch])
                conv(block.mlp.fn[branch].c_fc, std)
                conv(block.mlp.fn[branch].c_proj, resid_std)
            norm(self.transformer.ln_f.fn[branch])
        embeddings = [self.motion_embedding] + ([] if motion_only else [self.transformer.wte, self.transformer.wpe])
        for emb in embeddings:
            nn.init.normal_(emb.weight, std=std)
        self.motion_embedding.weight[self.config.motion_padding_idx].zero_()
        nn.init.normal_(self.motion_head.weight, std=std)

    def gpt2_key_map(self) -> dict[str, str]:
        """Our state-dict key -> transformers `GPT2LMHeadModel` key, for every text-branch and shared tensor."""
        names = {"transformer.wte.weight": "transformer.wte.weight", "transformer.wpe.weight": "transformer.wpe.weight"}
        for suffix in ("weight", "bias"):
            names[f"transformer.ln_f.fn.0.{suffix}"] = f"transformer.ln_f.{suffix}"
        for key in self.state_dict(keep_vars=True):
            parts = key.split(".")  # transformer.h.{i}.{name}.fn.0.{rest...}
            if parts[1] == "h" and parts[4:6] == ["fn", "0"]:
                rest = ".".join(parts[6:])
                names[key] = f"transformer.h.{parts[2]}.{_GPT2_LAYER_NAMES[parts[3]]}.{rest}"
        return names

    def to_gpt2_state_dict(self) -> dict[str, torch.Tensor]:
        """The text branch as a transformers `GPT2LMHeadModel(config.gpt2_config())` state dict (shares storage).

        Includes `lm_head.weight` (the same tensor as `transformer.wte.weight`), as that model's state dict does.
        """
        ours = self.state_dict()
        out = {theirs: ours[key] for key, theirs in self.gpt2_key_map().items()}
        out["lm_head.weight"] = out["transformer.wte.weight"]
        return out

    @torch.no_grad()
    def load_gpt2_text_branch(self, gpt2_state_dict: dict[str, torch.Tensor]) -> None:
        """Copy a transformers GPT-2 state dict (`GPT2LMHeadModel` or bare `GPT2Model` keys) into the text branch.

        The motion branch is untouched. A smaller source vocabulary (GPT-2's 50257 rows vs our 50259) is resized
        as upstream's `resize_token_embeddings` does: the new rows (<start_of_motion>, <end_of_motion>) get the
        mean of the old rows (transformers adds noise scaled by 1e-9 of their covariance; we leave it out).
        Unknown or missing keys and mismatched shapes are errors naming the key.
        """
        source = {}
        for key, value in gpt2_state_dict.items():
            key = key.removeprefix("transformer.")
            if key == "lm_head.weight" or key.endswith((".attn.bias", ".attn.masked_bias")):
                continue  # tied head; the causal-mask buffers of older transformers versions
            source[key] = value
        params = self.state_dict(keep_vars=True)
        targets = {theirs.removeprefix("transformer."): ours for ours, theirs in self.gpt2_key_map().items()}
        if unknown := sorted(set(source) - set(targets)):
            raise KeyError(f"load_gpt2_text_branch: unexpected GPT-2 key {unknown[0]!r}")
        if missing := sorted(set(targets) - set(source)):
            raise KeyError(f"load_gpt2_text_branch: missing GPT-2 key {missing[0]!r}")
        for key, value in source.items():
            target = params[targets[key]]
            if key == "wte.weight" and value.shape[0] < target.shape[0] and value.shape[1:] == target.shape[1:]:
                mean = value.mean(dim=0, keepdim=True)
                value = torch.cat([value, mean.expand(target.shape[0] - value.shape[0], -1)])
            if value.shape != target.shape:
                raise ValueError(
                    f"load_gpt2_text_branch: {key!r} has shape {list(value.shape)}, want {list(target.shape)}"
                )
            target.copy_(value)

    # ----------------------------------------------------------------------------------------------- forward

    def embed_tokens(self, ids: torch.Tensor, type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """ids [B, S] in the full 50263-token vocabulary -> token embeddings [B, S, D] (no position embedding).

        Text positions look up `wte[id]`, motion positions `pre_processors.1[id - 50259]`. `type_ids` defaults
        to the routing rule (motion iff id >= 50259); callers may mark other positions as motion explicitly.
        """
        is_motion = ids >= MOTION_TOKEN_START if type_ids is None else type_ids == MOTION
        local = ids - MOTION_TOKEN_START
        text_ok = (ids >= 0) & (ids < self.config.text_vocab_size)
        motion_ok = (local >= 0) & (local < self.config.motion_vocab_size)
        if not bool(torch.where(is_motion, motion_ok, text_ok).all()):
            raise ValueError("embed_tokens: a token id is outside the vocabulary of its branch")
        text = self.transformer.wte(torch.where(is_motion, 0, ids))
        motion = self.motion_embedding(torch.where(is_motion, local, self.config.motion_padding_idx))
        return torch.where(is_motion[..., None], motion, text)

    def text_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., text_vocab_size]: the LM head tied to `wte` (meaningful at text positions)."""
        return functional.linear(hidden, self.transformer.wte.weight)

    def motion_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., motion_vocab_size] (`post_processors.1`; unused by upstream's losses)."""
        return self.motion_head(hidden)

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        type_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Run the layers over one batch of token embeddings.

        inputs_embeds [B, S, D]: token embeddings WITHOUT `wpe` (from `embed_tokens`, or motion-latent holders).
        type_ids [B, S]: 0 text, 1 motion (selects the branch of every position).
        attention_mask [B, S_past + S]: 1 real, 0 padding, covering the cached positions too (default all real).
        position_ids [B, S]: `wpe` rows; arange for right-padded single forwards, cumsum(mask) - 1 for left-padded
            generation (default: continue from the cache length).
        past_key_values: per layer (k, v) [B, H, S_past, head_dim] from an earlier call with `use_cache`.
        Returns (hidden [B, S, D] after each position's branch `ln_f`, the updated cache or None).
        """
        b, s, _ = inputs_embeds.shape
        past_len = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        device = inputs_embeds.device
        if attention_mask is None:
            attention_mask = torch.ones(b, past_len + s, dtype=torch.long, device=device)
        if attention_mask.shape != (b, past_len + s):
            raise ValueError(
                f"attention_mask has shape {list(attention_mask.shape)}, want [{b}, {past_len + s}] (past + new)"
            )
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + s, device=device).expand(b, s)
        routing = Routing.from_types(type_ids)

        # Query i (absolute index past_len + i) may attend key j iff j <= past_len + i and key j is real. A query
        # also always sees itself, so padded queries (e.g. left padding) get a finite output instead of NaN;
        # real positions are unaffected.
        q_idx = torch.arange(past_len, past_len + s, device=device)[:, None]
        k_idx = torch.arange(past_len + s, device=device)[None, :]
        key_real = attention_mask.bool()[:, None, :]  # [B, 1, S_total]
        allowed = (k_idx <= q_idx) & (key_real | (k_idx == q_idx))  # [B, S, S_total]
        attn_mask = allowed[:, None]  # [B, 1, S, S_total], broadcast over heads

        per_row = past_key_values is None and b > 1 and not self.training  # inference prefill (batch-invariant)
        row_lengths = _right_padded_lengths(attention_mask) if per_row else None
        h = self.transformer.drop(inputs_embeds + self.transformer.wpe(position_ids))
        new_past = []
        for i, block in enumerate(self.transformer.h):
            past = None if past_key_values is None else past_key_values[i]
            h, kv = block(h, routing, attn_mask, past, row_lengths)
            new_past.append(kv)
        h = self.transformer.ln_f(h, routing)
        return h, (tuple(new_past) if use_cache else None)


def _right_padded_lengths(attention_mask: torch.Tensor) -> list[int] | None:
    """Each row's real length when every row is real tokens then padding (right padding), else None."""
    lengths = attention_mask.sum(dim=1)  # [B]
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    if not bool(((positions[None, :] < lengths[:, None]) == attention_mask.bool()).all()):
        return None
    return lengths.tolist()
