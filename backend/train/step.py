"""One training forward: motions -> frozen-VAE latents -> MoT GPT-2 -> text and diffusion losses (spec §6.3, §7.2).

Sequence per sample: INPUT + " \\n " + OUTPUT + EOS (built by the dataset). Input motions become posterior
SAMPLES of the frozen VAE × latent_scale in the `<motion_latent_holder>` slots; output motions become the same
kind of latents as diffusion targets, conditioned on the motion branch's final states at the 4
`<motion_latent_holder_output>` positions. Total = λ_text · L_text + λ_diff · L_diff (per stage).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from backend.model.config import HOLDER_OUTPUT_ID
from backend.model.motiongpt3 import MotionGPT3

from .data import TrainingBatch
from .losses import diffusion_loss, text_loss, vae_losses
from .stages import Stage


@torch.no_grad()
def encode_motions(
    model: MotionGPT3, clips: Sequence[np.ndarray], generator: torch.Generator | None, sample: bool = True
) -> torch.Tensor:
    """Raw clips -> LM-space latents [N, D]: a posterior sample (or the mean) each, frozen VAE, × latent_scale."""
    features, lengths = model.pad_features(list(clips))
    return model.to_lm_space(model.encode_latents(features, lengths, sample=sample, generator=generator))


class PosteriorMeanCache:
    """LM-space posterior means of the motions the frozen VAE has already encoded, keyed by each motion's bytes.

    With posterior means as latents, a motion's latent is a pure function of its frames, and most items repeat
    every epoch (two in three keep their whole clip), so an LM stage encodes each distinct motion once: encoding
    was ~20 % of a demo-model stage-1 step on CPU. Only for frozen, eval-mode VAEs.
    """

    def __init__(self) -> None:
        self._latents: dict[bytes, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._latents)

    @staticmethod
    def key(motion: np.ndarray) -> bytes:
        data = np.ascontiguousarray(motion, dtype=np.float32)
        digest = hashlib.blake2b(data.tobytes(), digest_size=16).digest()
        return np.asarray(data.shape, dtype=np.int64).tobytes() + digest

    def encode(self, model: MotionGPT3, motions: Sequence[np.ndarray]) -> torch.Tensor:
        """Motions -> LM-space posterior means [N, D], encoding only those not seen before (in one batch)."""
        keys = [self.key(m) for m in motions]
        missing: dict[bytes, np.ndarray] = {}
        for key, motion in zip(keys, motions, strict=True):
            if key not in self._latents:
                missing.setdefault(key, motion)
        if missing:
            fresh = encode_motions(model, list(missing.values()), None, sample=False)
            self._latents.update(zip(missing, fresh.detach(), strict=True))
        return torch.stack([self._latents[k] for k in keys])


def lm_losses(
    model: MotionGPT3,
    batch: TrainingBatch,
    stage: Stage,
    generator: torch.Generator | None,
    cache: PosteriorMeanCache | None = None,
) -> dict[str, torch.Tensor]:
    """Losses of an LM stage: `loss` (weighted total), `text`, `diff` (NaN where not computed). `cache` serves the
    latents when the stage uses posterior means."""
    if batch.tokens is None or batch.labels is None:
        raise ValueError("LM stages need tokenised samples")
    device = model.device
    inputs, outputs = batch.flat_inputs, batch.flat_outputs
    motions = inputs + outputs
    if not motions:
        latents = None
    elif cache is not None and not stage.posterior_samples:
        latents = cache.encode(model, motions)
    else:
        latents = encode_motions(model, motions, generator, stage.posterior_samples)
    input_latents = latents[: len(inputs)] if inputs else None
    tokens = batch.tokens
    ids = tokens.ids.to(device)
    with model.autocast():
        embeds, type_ids = model.embed_prompt(tokens, input_latents)
        hidden, _ = model.lm(embeds, type_ids, tokens.attention_mask.to(device), tokens.position_ids.to(device))
        zero = hidden.sum() * 0.0  # keeps a graph for batches without one of the two terms
        nan = torch.full((), float("nan"), device=device)
        l_text = text_loss(model.lm, hidden, batch.labels.to(device)) if stage.text_weight > 0 else None
        if outputs:
            holders = model.config.backbone.holders_per_motion
            condition = hidden[ids == HOLDER_OUTPUT_ID].reshape(len(outputs), holders, -1)  # reading order
            null = model.fake_latent if stage.cfg_dropout else None
            l_diff = diffusion_loss(model.diffloss, latents[len(inputs) :], condition, generator, null)
        else:
            l_diff = None  # upstream: a batch without output motions has L_diff = 0
        total = zero
        if l_text is not None:
            total = total + stage.text_weight * l_text
        if l_diff is not None:
            total = total + stage.diff_weight * l_diff
    return {
        "loss": total.float(),
        "text": nan if l_text is None else l_text.detach().float(),
        "diff": nan if l_diff is None else l_diff.detach().float(),
    }


def vae_stage_losses(
    model: MotionGPT3, batch: TrainingBatch, stage: Stage, generator: torch.Generator | None
) -> dict[str, torch.Tensor]:
    """Losses of the VAE stage on normalised features with length masks: recon + joints_weight·joints +
    kl_weight·KL + root_weight·root + limb_weight·limbs."""
    features, lengths = model.pad_features(batch.flat_outputs)
    with model.autocast():
        parts = vae_losses(model.vae, features, lengths, generator, stage.posterior_noise)
    total = parts["recon"] + stage.joints_weight * parts["joints"] + stage.kl_weight * parts["kl"]
    total = total + stage.root_weight * parts["root"] + stage.limb_weight * parts["limbs"]
    return {"loss": total.float(), **{k: v.detach().float() for k, v in parts.items()}}


class TrainingObjective(nn.Module):
    """The model plus its stage: `forward(batch, generator)` -> loss dict. This is what DDP wraps, so gradient
    synchronisation sees every parameter the losses touch."""

    def __init__(self, model: MotionGPT3, stage: Stage) -> None:
        super().__init__()
        self.model = model
        self.stage = stage
        self.latent_cache = PosteriorMeanCache()  # valid while the VAE is frozen, i.e. for the whole LM stage

    def train(self, mode: bool = True) -> TrainingObjective:
        """Train mode for the trained parts; a frozen VAE stays in eval mode (no dropout when encoding)."""
        super().train(mode)
        if self.stage.trains != "vae":
            self.model.vae.eval()
        return self

    def forward(self, batch: TrainingBatch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if self.stage.trains == "vae":
            return vae_stage_losses(self.model, batch, self.stage, generator)
        return lm_losses(self.model, batch, self.stage, generator, self.latent_cache)
