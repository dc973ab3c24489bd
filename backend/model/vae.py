"""MLD motion VAE: skip-connected post-norm transformer encoder/decoder mapping a clip to one latent token."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional

from backend.model.config import VaeConfig
from backend.model.rows import pad_rows, stable_rows

# Layout: the public API is batch-first ([B, T, ...]); inside, sequences are sequence-first ([S, B, D]) like
# upstream `mld_vae.py`, so the torch transformer layers run with batch_first=False (no fused fast path).


class LearnedPositions(nn.Module):
    """Learned absolute 1-D positions (`PositionEmbeddingLearned1D`), added once to the input sequence."""

    def __init__(self, max_positions: int, width: int) -> None:
        super().__init__()
        self.pe = nn.Parameter(torch.empty(max_positions, 1, width))  # [P, 1, D], sequence-first
        nn.init.uniform_(self.pe)  # upstream: uniform(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [S, B, D] -> x + pe[:S]."""
        return x + self.pe[: x.shape[0]]


class SkipTransformer(nn.Module):
    """U-Net stack of (n-1)/2 input blocks, a middle block and (n-1)/2 output blocks with LIFO skip fusion."""

    def __init__(self, layer: nn.Module, num_layers: int, width: int) -> None:
        super().__init__()
        num_skip = (num_layers - 1) // 2
        self.input_blocks = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_skip))
        self.middle_block = copy.deepcopy(layer)
        self.output_blocks = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_skip))
        self.linear_blocks = nn.ModuleList(nn.Linear(2 * width, width) for _ in range(num_skip))
        self.norm = nn.LayerNorm(width)
        for p in self.parameters():  # upstream `_reset_parameters`: xavier on every matrix
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self,
        x: torch.Tensor,
        *args: torch.Tensor,
        run_layer: Callable[..., torch.Tensor] | None = None,
        **kwargs: torch.Tensor | None,
    ) -> torch.Tensor:
        """x [S, B, D]; extra arguments (memory, masks) go unchanged to every layer, called as
        `run_layer(layer, x, *args, **kwargs)` when given (an equivalent faster evaluation). Returns [S, B, D]."""
        run = run_layer or (lambda layer, *a, **k: layer(*a, **k))
        skips: list[torch.Tensor] = []
        for block in self.input_blocks:
            x = run(block, x, *args, **kwargs)
            skips.append(x)
        x = run(self.middle_block, x, *args, **kwargs)
        for fuse, block in zip(self.linear_blocks, self.output_blocks, strict=True):
            x = fuse(torch.cat([x, skips.pop()], dim=-1))  # [S, B, 2D] -> [S, B, D]; deepest skip first
            x = run(block, x, *args, **kwargs)
        return self.norm(x)


def decoder_layer_per_clip(
    layer: nn.TransformerDecoderLayer, x: torch.Tensor, memory: torch.Tensor, tgt_key_padding_mask: torch.Tensor
) -> torch.Tensor:
    """`layer(x, memory, tgt_key_padding_mask=...)` of a post-norm layer in eval mode, memory the latent tokens
    [L, B, D]; the same function as torch's layer, evaluated so that a clip decodes to the same numbers alone or
    batched with clips of any length (`rows.py`): each clip's frames attend over its own frames only (attention over
    masked padding frames rounds differently as the padded length changes), then over its own L tokens, and the
    memory's few rows are padded to a multiple of 4."""
    lengths = (~tgt_key_padding_mask).sum(dim=1).tolist()  # [B] real frames per clip
    x = layer.norm1(x + _self_attention_per_clip(layer.self_attn, x, lengths))
    x = layer.norm2(x + _cross_attention_per_clip(layer.multihead_attn, x, memory, lengths))
    return layer.norm3(x + layer._ff_block(x))


def _cross_attention_per_clip(
    attention: nn.MultiheadAttention, x: torch.Tensor, memory: torch.Tensor, lengths: list[int]
) -> torch.Tensor:
    """`attention(x, memory, memory)` [T, B, D] in eval mode over memory [L, B, D] (no mask), the clips of each
    length in one call of that length; frames beyond a clip's length get out_proj(0).

    With one token (L = 1) softmax over a single key weighs it exactly 1 for every query, so the output is
    out_proj(V(memory)) at every frame: no query/key projections or attention over T frames are computed."""
    frames, batch, width = x.shape
    heads, d = attention.num_heads, width
    tokens = memory.shape[0]
    padded = pad_rows(memory, stable_rows(batch, memory.device), dim=1)  # [L, B', D]
    if tokens == 1:
        values = functional.linear(padded, attention.in_proj_weight[2 * d :], attention.in_proj_bias[2 * d :])
        return attention.out_proj(values)[:, :batch].expand(frames, -1, -1)  # [1, B, D] broadcast over T frames
    q = functional.linear(x, attention.in_proj_weight[:d], attention.in_proj_bias[:d])  # [T, B, D]
    kv = functional.linear(padded, attention.in_proj_weight[d:], attention.in_proj_bias[d:])[:, :batch]  # [L, B, 2D]
    k, v = kv.reshape(tokens, batch, 2, heads, d // heads).permute(2, 1, 3, 0, 4)  # each [B, H, L, hd]
    out = x.new_zeros(frames, batch, width)
    for n, clips in _clips_by_length(lengths):
        rows = q[:n, clips].reshape(n, len(clips), heads, d // heads).permute(1, 2, 0, 3)  # [G, H, n, hd]
        attended = functional.scaled_dot_product_attention(rows, k[clips], v[clips])  # [G, H, n, hd]
        out[:n, clips] = attended.permute(2, 0, 1, 3).reshape(n, len(clips), width)
    return attention.out_proj(out)


def _clips_by_length(lengths: list[int]) -> list[tuple[int, list[int]]]:
    """(length, the clips of that length), shortest first."""
    return [(n, [clip for clip, length in enumerate(lengths) if length == n]) for n in sorted(set(lengths))]


def _self_attention_per_clip(attention: nn.MultiheadAttention, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """`attention(x, x, x, key_padding_mask)` [T, B, D] in eval mode, the clips of each length attending over their
    own frames in one call of that length (projections batched); frames beyond a clip's length get out_proj(0)."""
    frames, batch, width = x.shape
    heads = attention.num_heads
    qkv = functional.linear(x, attention.in_proj_weight, attention.in_proj_bias)  # [T, B, 3D]
    out = x.new_zeros(frames, batch, width)
    for n, clips in _clips_by_length(lengths):
        rows = qkv[:n, clips] if len(clips) < batch else qkv[:n]  # [n, G, 3D]
        q, k, v = rows.reshape(n, len(clips), 3, heads, width // heads).permute(2, 1, 3, 0, 4)  # each [G, H, n, hd]
        attended = functional.scaled_dot_product_attention(q, k, v)  # [G, H, n, hd]
        out[:n, clips] = attended.permute(2, 0, 1, 3).reshape(n, len(clips), width)
    return attention.out_proj(out)


class MotionVae(nn.Module):
    """The MLD VAE of MotionGPT3 (spec §4); parameter names match the checkpoint's `vae.*` keys."""

    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        self.config = config
        width = config.latent_dim
        self.num_queries = 2 * config.latent_size  # μ tokens then log σ² tokens
        self.skel_embedding = nn.Linear(config.nfeats, width)
        self.global_motion_token = nn.Parameter(torch.randn(self.num_queries, width))  # [2L, D]
        self.query_pos_encoder = LearnedPositions(config.max_positions, width)
        self.query_pos_decoder = LearnedPositions(config.max_positions, width)
        encoder_layer = nn.TransformerEncoderLayer(
            width, config.num_heads, config.ff_size, config.dropout, activation="gelu", norm_first=False
        )
        decoder_layer = nn.TransformerDecoderLayer(
            width, config.num_heads, config.ff_size, config.dropout, activation="gelu", norm_first=False
        )
        self.encoder = SkipTransformer(encoder_layer, config.num_layers, width)
        self.decoder = SkipTransformer(decoder_layer, config.num_layers, width)
        self.final_layer = nn.Linear(width, config.nfeats)

    @property
    def max_frames(self) -> int:
        """Longest clip the encoder accepts (the positional table also holds the query tokens)."""
        return self.config.max_positions - self.num_queries

    def _check_lengths(self, lengths: torch.Tensor, batch: int, frames: int | None) -> int:
        """Validate lengths [B] (1 <= L_b <= frames) and return max(lengths)."""
        if lengths.dim() != 1 or lengths.shape[0] != batch:
            raise ValueError(f"lengths must have shape [{batch}], got {list(lengths.shape)}")
        if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
            raise ValueError(f"lengths must be integers, got {lengths.dtype}")
        if batch == 0:
            raise ValueError("empty batch")
        shortest, longest = int(lengths.min()), int(lengths.max())
        if shortest < 1:
            raise ValueError(f"every length must be >= 1 frame, got {shortest}")
        if frames is not None and longest > frames:
            raise ValueError(f"length {longest} exceeds the {frames} frames given")
        return longest

    def encode_distribution(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised features [B, T, nfeats] and lengths [B] -> (μ, log σ²), each [B, latent_size, D]."""
        if features.dim() != 3 or features.shape[-1] != self.config.nfeats:
            raise ValueError(f"features must be [B, T, {self.config.nfeats}], got {list(features.shape)}")
        batch = features.shape[0]
        frames = self._check_lengths(lengths, batch, features.shape[1])
        if frames > self.max_frames:
            raise ValueError(
                f"clip of {frames} frames exceeds the VAE encoder limit of {self.max_frames} frames "
                f"(max_positions {self.config.max_positions} minus {self.num_queries} query tokens)"
            )
        features = features[:, :frames]  # frames beyond every length are masked anyway
        valid = torch.arange(frames, device=features.device) < lengths.to(features.device)[:, None]  # [B, T]
        queries_valid = torch.ones(batch, self.num_queries, dtype=torch.bool, device=features.device)
        padding = ~torch.cat([queries_valid, valid], dim=1)  # [B, 2L+T], True = ignored key

        x = self.skel_embedding(features).transpose(0, 1)  # [T, B, D]
        tokens = self.global_motion_token[:, None, :].expand(-1, batch, -1)  # [2L, B, D]
        x = self.query_pos_encoder(torch.cat([tokens, x], dim=0))  # [2L+T, B, D]
        out = self.encoder(x, src_key_padding_mask=padding)[: self.num_queries]  # [2L, B, D]
        out = out.transpose(0, 1)  # [B, 2L, D]
        latent_size = self.config.latent_size
        return out[:, :latent_size], out[:, latent_size:]

    def encode(
        self,
        features: torch.Tensor,
        lengths: torch.Tensor,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Latent z [B, latent_size, D]: the posterior mean, or a reparameterised sample (unscaled, no 0.8457)."""
        mu, logvar = self.encode_distribution(features, lengths)
        if not sample:
            return mu
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * noise

    def decode(self, z: torch.Tensor, lengths: torch.Tensor, shortcut: bool = True) -> torch.Tensor:
        """Latent z [B, latent_size, D] and lengths [B] -> normalised features [B, max(lengths), nfeats], 0-padded.

        `shortcut`: in eval mode, evaluate the decoder layers clip by clip, batch-invariant, and with one latent
        token without the per-frame cross-attention work (`decoder_layer_per_clip`, the same function); False runs
        torch's layers."""
        expected = (self.config.latent_size, self.config.latent_dim)
        if z.dim() != 3 or tuple(z.shape[1:]) != expected:
            raise ValueError(f"z must be [B, {expected[0]}, {expected[1]}], got {list(z.shape)}")
        batch = z.shape[0]
        frames = self._check_lengths(lengths, batch, None)
        if frames > self.config.max_positions:
            raise ValueError(
                f"clip of {frames} frames exceeds the VAE decoder limit of {self.config.max_positions} frames "
                "(max_positions)"
            )
        valid = torch.arange(frames, device=z.device) < lengths.to(z.device)[:, None]  # [B, T]

        queries = torch.zeros(frames, batch, self.config.latent_dim, device=z.device, dtype=z.dtype)  # [T, B, D]
        queries = self.query_pos_decoder(queries)
        memory = z.transpose(0, 1)  # [L, B, D]
        run_layer = decoder_layer_per_clip if shortcut and not self.training else None
        out = self.decoder(queries, memory, tgt_key_padding_mask=~valid, run_layer=run_layer)  # [T, B, D]
        feats = self.final_layer(out).transpose(0, 1)  # [B, T, nfeats]
        return feats.masked_fill(~valid[:, :, None], 0.0)

    @staticmethod
    def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(μ, σ²) ‖ N(0, I)), averaged over every element (MLD's `kl_divergence(q, p).mean()`)."""
        return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).mean()

    @staticmethod
    def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """SmoothL1 (β = 1) between [B, T, nfeats] tensors, averaged over the valid frames' elements only."""
        if pred.shape != target.shape:
            raise ValueError(f"pred {list(pred.shape)} and target {list(target.shape)} must have the same shape")
        valid = torch.arange(pred.shape[1], device=pred.device) < lengths.to(pred.device)[:, None]  # [B, T]
        return nn.functional.smooth_l1_loss(pred[valid], target[valid])
