"""MotionGPT3: the VAE, the MoT GPT-2 backbone, the motion input projection, the CFG null condition and the
diffusion head, tied together with the prompt/latent plumbing every task shares."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from shared.motion.normalization import humanml3d_stats

from .config import HOLDER_INPUT_ID, HOLDER_OUTPUT_ID, MOTION_TOKEN_START, MotionGPT3Config
from .diffusion_head import DiffusionHead, Generators
from .inputs import check_clip, request_generator
from .mot_gpt2 import MoTGPT2
from .tokenizer import TokenBatch
from .vae import MotionVae

Progress = Callable[[int, int], None]
ShouldCancel = Callable[[], bool]


class MotionGPT3(nn.Module):
    """The whole model; state-dict names are the official checkpoint's under the key map of `checkpoint.py`."""

    def __init__(self, config: MotionGPT3Config) -> None:
        super().__init__()
        self.config = config
        holders, hidden = config.backbone.holders_per_motion, config.hidden_dim
        self.vae = MotionVae(config.vae)
        self.lm = MoTGPT2(config.backbone)
        # One motion's latent tokens, flattened -> its 4 holder embeddings.
        self.motion_und_head = nn.Linear(self.motion_latent_width, holders * hidden)
        self.fake_latent = nn.Parameter(torch.zeros(holders, hidden))  # CFG null condition ('learnable_zero')
        self.diffloss = DiffusionHead(config)
        stats = humanml3d_stats()
        self.register_buffer("feature_mean", torch.tensor(stats.mean, dtype=torch.float32), persistent=False)
        self.register_buffer("feature_std", torch.tensor(stats.std, dtype=torch.float32), persistent=False)

    @property
    def motion_latent_width(self) -> int:
        """Width of one motion's latent as the LM and the tasks see it: the VAE's latent tokens flattened, L·D."""
        return self.config.vae.latent_size * self.config.latent_dim

    @property
    def device(self) -> torch.device:
        return self.fake_latent.device

    def autocast(self) -> torch.autocast | nullcontext:
        """bf16 autocast on CUDA (fp16 where bf16 is unsupported); plain fp32 on the CPU."""
        if self.device.type != "cuda":
            return nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    # ------------------------------------------------------------------------------------------ features

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """Raw 263-dim features -> the model's normalised space."""
        return (features - self.feature_mean) / self.feature_std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised features -> raw 263-dim features."""
        return z * self.feature_std + self.feature_mean

    def pad_features(self, clips: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (T_i, 263) clips -> normalised zero-padded [B, max T, 263] and lengths [B] on the model device."""
        lengths = torch.tensor([len(c) for c in clips], dtype=torch.long, device=self.device)
        batch = torch.zeros(len(clips), int(lengths.max()), self.config.vae.nfeats, device=self.device)
        for row, clip in enumerate(clips):
            batch[row, : len(clip)] = self.normalize(torch.as_tensor(clip, dtype=torch.float32, device=self.device))
        return batch, lengths

    # ------------------------------------------------------------------------------------------ latents

    def encode_latents(
        self, features: torch.Tensor, lengths: torch.Tensor, sample: bool = False, generator: Generators = None
    ) -> torch.Tensor:
        """Normalised features [B, T, 263] -> VAE latents [B, L·D] (the latent tokens flattened; unscaled:
        posterior mean or a sample)."""
        if isinstance(generator, Sequence):  # per-row generators: encode rows one by one
            rows = [
                self.vae.encode(features[i : i + 1], lengths[i : i + 1], sample, g) for i, g in enumerate(generator)
            ]
            return torch.cat(rows).flatten(1)
        return self.vae.encode(features, lengths, sample=sample, generator=generator).flatten(1)

    def decode_latents(self, latents: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """VAE latents [B, L·D] (unscaled) -> normalised features [B, max(lengths), 263], zero beyond each length."""
        return self.vae.decode(latents.reshape(len(latents), self.config.vae.latent_size, -1), lengths)

    def to_lm_space(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE latent -> LM / diffusion space (× latent_scale)."""
        return latents * self.config.vae.latent_scale

    def from_lm_space(self, latents: torch.Tensor) -> torch.Tensor:
        """LM / diffusion space -> VAE latent (÷ latent_scale)."""
        return latents / self.config.vae.latent_scale

    # ------------------------------------------------------------------------------------------ prompts

    def embed_prompt(self, tokens: TokenBatch, input_latents: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings [B, S, D] and type ids [B, S] of a prompt batch.

        `input_latents` [N, D] (LM space) fill the `<motion_latent_holder>` positions in reading order (row-major
        over the batch): latent j becomes the 4 consecutive holder embeddings of the j-th input motion.
        """
        ids = tokens.ids.to(self.device)
        type_ids = (ids >= MOTION_TOKEN_START).long()
        embeds = self.lm.embed_tokens(ids, type_ids)
        holders = ids == HOLDER_INPUT_ID
        count = int(holders.sum())
        if count:
            per_motion = self.config.backbone.holders_per_motion
            if input_latents is None or count != per_motion * len(input_latents):
                given = 0 if input_latents is None else len(input_latents)
                raise ValueError(f"prompt has {count // per_motion} input motions but {given} latents were given")
            holder_embeds = self.motion_und_head(input_latents).reshape(-1, self.config.hidden_dim)
            embeds = embeds.masked_scatter(holders[..., None], holder_embeds.to(embeds.dtype))
        return embeds, type_ids

    def motion_condition(self, tokens: TokenBatch, input_latents: torch.Tensor | None = None) -> torch.Tensor:
        """One forward over right-padded prompts that end in an output motion sequence -> the motion branch's
        final hidden states at the 4 output holders, [B, 4, hidden] (the diffusion condition)."""
        embeds, type_ids = self.embed_prompt(tokens, input_latents)
        mask = tokens.attention_mask.to(self.device)
        hidden, _ = self.lm(embeds, type_ids, mask, tokens.position_ids.to(self.device))
        output_holders = tokens.ids.to(self.device) == HOLDER_OUTPUT_ID
        per_motion = self.config.backbone.holders_per_motion
        if not bool((output_holders.sum(-1) == per_motion).all()):
            raise ValueError(f"every prompt must hold exactly {per_motion} output holders")
        return hidden[output_holders].reshape(len(hidden), per_motion, -1)

    def sample_latents(
        self,
        condition: torch.Tensor,
        guidance_scale: float,
        steps: int | None,
        generators: Generators,
        progress: Progress | None = None,
        should_cancel: ShouldCancel | None = None,
    ) -> torch.Tensor:
        """Diffusion head: condition [B, 4, hidden] -> latents [B, L·D] in LM space."""
        null = self.fake_latent if guidance_scale != 1.0 else None
        return self.diffloss.sample(
            condition, null, guidance_scale, steps, generators, progress=progress, should_cancel=should_cancel
        ).flatten(1)

    # ------------------------------------------------------------------------------------------ public API
    # Arrays in and out are raw (de-normalised) 263-dim features at 20 fps; normalisation is internal.

    @torch.no_grad()
    def encode_motion(self, features: np.ndarray, sample: bool = False, seed: int = 0) -> np.ndarray:
        """features [T, 263] -> the VAE latent [L·D] before the LM's latent scaling (posterior mean unless sample)."""
        batch, lengths = self.pad_features([check_clip(features, "features")])
        generator = request_generator(seed) if sample else None
        return self.encode_latents(batch, lengths, sample, generator)[0].float().cpu().numpy()

    @torch.no_grad()
    def decode_motion(self, latent: np.ndarray, frames: int) -> np.ndarray:
        """A VAE latent [L·D] (unscaled) -> features [frames, 263]."""
        latent_t = torch.as_tensor(np.asarray(latent, dtype=np.float32), device=self.device).reshape(1, -1)
        lengths = torch.tensor([int(frames)], device=self.device)
        return self.denormalize(self.decode_latents(latent_t, lengths)[0]).cpu().numpy()
