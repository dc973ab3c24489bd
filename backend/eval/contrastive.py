"""A small contrastive text–motion evaluator we train ourselves, for R-precision/FID/MM-Dist/Diversity where the
Guo et al. evaluator (or its data) is not available, e.g. on a synthetic set.

Motion: HumanML3D-normalised 263-d features without the 4 contact dims -> dilated residual Conv1d stack ->
masked mean over the valid frames -> Linear -> 256-d. Text: GPT-2 BPE ids (our bundled tokenizer) mapped onto the
rows of the tokens seen in training (others -> one `unknown` row) -> embedding + learned positions -> small
Transformer encoder -> masked mean -> Linear -> 256-d. Both outputs are L2-normalised; training minimises the
symmetric InfoNCE loss with a learnable temperature (CLIP). Saved as safetensors with the config in the metadata.
Numbers from this evaluator are comparable only with each other, never with the T2M evaluator's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

FORMAT = "motiongpt3-contrastive-evaluator/1"
PAD_ROW, UNKNOWN_ROW = 0, 1  # text embedding rows before the known tokens
INPUT_DIMS = 259  # the 263 features without the foot contacts


@dataclass(frozen=True)
class ContrastiveConfig:
    """Sizes of the contrastive evaluator (the defaults train in minutes on a CPU)."""

    known_tokens: int = 0  # GPT-2 ids with their own embedding row (set by training)
    motion_channels: int = 256
    motion_blocks: int = 3  # residual blocks with dilations 1, 2, 4, ...
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    embed_dim: int = 256
    max_text_tokens: int = 48
    max_frames: int = 196  # training crops longer clips to this many frames


class MotionEncoder(nn.Module):
    """Normalised features [B, T, 259] and a validity mask [B, T] -> [B, embed_dim] (not normalised)."""

    def __init__(self, config: ContrastiveConfig):
        super().__init__()
        width = config.motion_channels
        self.input = nn.Conv1d(INPUT_DIMS, width, 5, padding=2)
        self.blocks = nn.ModuleList(
            nn.Conv1d(width, width, 5, padding=2 * 2**i, dilation=2**i) for i in range(config.motion_blocks)
        )
        self.norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, config.embed_dim)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        gate = mask[:, None, :].to(features.dtype)  # zero the padding before every conv so it never leaks in
        x = functional.gelu(self.input(features.transpose(1, 2) * gate))
        for block in self.blocks:
            x = x + functional.gelu(block(x * gate))
        pooled = (x * gate).sum(-1) / gate.sum(-1).clamp(min=1.0)
        return self.output(self.norm(pooled))


class TextEncoder(nn.Module):
    """Embedding rows [B, S] and a validity mask [B, S] -> [B, embed_dim] (not normalised)."""

    def __init__(self, config: ContrastiveConfig):
        super().__init__()
        width = config.text_width
        self.tokens = nn.Embedding(config.known_tokens + 2, width, padding_idx=PAD_ROW)
        self.positions = nn.Embedding(config.max_text_tokens, width)
        layer = nn.TransformerEncoderLayer(
            width, config.text_heads, 2 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, config.text_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, config.embed_dim)

    def forward(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(rows.shape[1], device=rows.device)
        x = self.transformer(self.tokens(rows) + self.positions(positions), src_key_padding_mask=~mask)
        gate = mask[..., None].to(x.dtype)
        return self.output(self.norm((x * gate).sum(1) / gate.sum(1).clamp(min=1.0)))


class ContrastiveEvaluator(nn.Module):
    """Paired text/motion encoders into one unit-norm 256-d space; `embed_*` work on raw clips and strings."""

    name = "contrastive"

    def __init__(self, config: ContrastiveConfig, feature_mean: np.ndarray, feature_std: np.ndarray):
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.as_tensor(np.asarray(feature_mean), dtype=torch.float32))
        self.register_buffer("feature_std", torch.as_tensor(np.asarray(feature_std), dtype=torch.float32))
        self.register_buffer("token_ids", torch.zeros(config.known_tokens, dtype=torch.long))  # sorted GPT-2 ids
        self.motion_encoder = MotionEncoder(config)
        self.text_encoder = TextEncoder(config)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def device(self) -> torch.device:
        return self.feature_mean.device

    # --- inputs -------------------------------------------------------------------------------------------------

    def motion_batch(self, clips: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw [T_i, 263] clips -> normalised, contact-free, zero-padded [B, T, 259] and mask [B, T]."""
        length = max(len(c) for c in clips)
        batch = torch.zeros((len(clips), length, INPUT_DIMS), device=self.device)
        mask = torch.zeros((len(clips), length), dtype=torch.bool, device=self.device)
        for i, clip in enumerate(clips):
            clip = torch.as_tensor(np.asarray(clip, dtype=np.float32), device=self.device)
            if clip.ndim != 2 or clip.shape[1] != 263 or len(clip) == 0:
                raise ValueError(f"clip {i}: expected (T >= 1, 263) features, got {tuple(clip.shape)}")
            batch[i, : len(clip)] = ((clip - self.feature_mean) / self.feature_std)[:, :INPUT_DIMS]
            mask[i, : len(clip)] = True
        return batch, mask

    def text_batch(self, token_lists: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """GPT-2 ids per caption -> embedding rows [B, S] (unknown ids -> UNKNOWN_ROW) and mask [B, S]."""
        lengths = [max(1, min(len(t), self.config.max_text_tokens)) for t in token_lists]  # empty -> one unknown
        ids = torch.full((len(token_lists), max(lengths)), -1, dtype=torch.long)
        mask = torch.zeros(ids.shape, dtype=torch.bool)
        for i, tokens in enumerate(token_lists):
            tokens = list(tokens)[: self.config.max_text_tokens]
            ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[i, : lengths[i]] = True
        ids, mask, known = ids.to(self.device), mask.to(self.device), self.token_ids
        if len(known):
            slot = torch.searchsorted(known, ids.clamp(min=0)).clamp(max=len(known) - 1)
            found = (known[slot] == ids) & (ids >= 0)
        else:
            slot, found = torch.zeros_like(ids), torch.zeros_like(mask)
        rows = torch.where(found, slot + 2, torch.full_like(ids, UNKNOWN_ROW))
        return torch.where(mask, rows, torch.full_like(ids, PAD_ROW)), mask

    # --- embeddings ---------------------------------------------------------------------------------------------

    def encode_motion(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return functional.normalize(self.motion_encoder(features, mask), dim=-1)

    def encode_text(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return functional.normalize(self.text_encoder(rows, mask), dim=-1)

    @torch.no_grad()
    def embed_motions(self, clips: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """Raw [T_i, 263] clips -> unit embeddings [N, embed_dim], input order."""
        out = [
            self.encode_motion(*self.motion_batch(clips[s : s + batch_size])) for s in range(0, len(clips), batch_size)
        ]
        return torch.cat(out).cpu().numpy()

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], tokens=None, batch_size: int = 256) -> np.ndarray:
        """Captions -> unit embeddings [N, embed_dim], input order (`tokens` is accepted and ignored)."""
        ids = tokenize_captions(texts)
        out = [self.encode_text(*self.text_batch(ids[s : s + batch_size])) for s in range(0, len(ids), batch_size)]
        return torch.cat(out).cpu().numpy()


def tokenize_captions(texts: Sequence[str]) -> list[list[int]]:
    """GPT-2 BPE ids of each caption (the bundled tokenizer, offline)."""
    from backend.model.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    return [tokenizer(str(t).strip(), add_special_tokens=False)["input_ids"] for t in texts]


def info_nce(text: torch.Tensor, motion: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of unit embeddings [B, D]: pair i is the positive of row and column i."""
    logits = logit_scale.clamp(max=math.log(100.0)).exp() * text @ motion.T
    target = torch.arange(len(text), device=text.device)
    return 0.5 * (functional.cross_entropy(logits, target) + functional.cross_entropy(logits.T, target))


def _default_stats() -> tuple[np.ndarray, np.ndarray]:
    from shared.motion.normalization import humanml3d_stats

    stats = humanml3d_stats()
    return stats.mean, stats.std


def train_contrastive(
    dataset_pairs: Sequence[tuple[str, np.ndarray]],
    steps: int = 2000,
    seed: int = 0,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    config: ContrastiveConfig | None = None,
    feature_stats: tuple[np.ndarray, np.ndarray] | None = None,
    device: str = "cpu",
    progress: Callable[[int, int, float], None] | None = None,
) -> ContrastiveEvaluator:
    """Train on (caption, raw [T, 263] features) pairs; deterministic for a given seed on one device.

    Clips longer than config.max_frames are randomly cropped each time they are drawn. feature_stats defaults to
    the bundled HumanML3D Mean/Std. progress(step, steps, loss) is called every step. The global torch RNG
    state is left as it was.
    """
    if len(dataset_pairs) < 2:
        raise ValueError("contrastive training needs at least 2 pairs")
    texts = [t for t, _ in dataset_pairs]
    clips = [np.asarray(m, dtype=np.float32) for _, m in dataset_pairs]
    token_lists = tokenize_captions(texts)
    known = sorted({i for tokens in token_lists for i in tokens})
    config = ContrastiveConfig(**{**asdict(config or ContrastiveConfig()), "known_tokens": len(known)})
    mean, std = feature_stats if feature_stats is not None else _default_stats()
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ContrastiveEvaluator(config, mean, std)
    model.token_ids.copy_(torch.tensor(known, dtype=torch.long))
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    size = min(batch_size, len(dataset_pairs))
    for step in range(steps):
        index = rng.choice(len(dataset_pairs), size, replace=False)
        batch_clips = []
        for i in index:
            clip = clips[i]
            if len(clip) > config.max_frames:
                start = int(rng.integers(0, len(clip) - config.max_frames + 1))
                clip = clip[start : start + config.max_frames]
            batch_clips.append(clip)
        motion = model.encode_motion(*model.motion_batch(batch_clips))
        text = model.encode_text(*model.text_batch([token_lists[i] for i in index]))
        loss = info_nce(text, motion, model.logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress(step + 1, steps, float(loss.detach()))
    return model.eval()


def save_contrastive(model: ContrastiveEvaluator, path: str | Path) -> None:
    """Weights and buffers as safetensors; the config travels in the metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": FORMAT, "config": json.dumps(asdict(model.config))})


def load_contrastive(path: str | Path, device: str = "cpu") -> ContrastiveEvaluator:
    """A saved contrastive evaluator (strict key check), in eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: not a contrastive evaluator file (format {metadata.get('format')!r})")
    config = ContrastiveConfig(**json.loads(metadata["config"]))
    state = load_file(str(path))
    model = ContrastiveEvaluator(config, state["feature_mean"].numpy(), state["feature_std"].numpy())
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
