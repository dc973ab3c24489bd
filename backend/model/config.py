"""Model configuration as dataclasses, with the `official` (published sizes) and `demo` (CPU-trainable) presets.

Sizes of the official preset follow MOTIONGPT3_SPEC.md (MLD VAE §4.1, GPT-2 small MoT §5.1, diffusion head
§6.1); every module reads its sizes from here, nothing is hard-coded elsewhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Token ids of the MotionGPT3 vocabulary (MOTIONGPT3_SPEC.md §2.1); fixed by the official checkpoint.
EOS_ID = 50256  # <|endoftext|>: bos / eos / unk / pad
SOM_ID = 50257  # <start_of_motion> (text branch)
EOM_ID = 50258  # <end_of_motion> (text branch)
MOTION_TOKEN_START = 50259  # ids >= this are motion-branch tokens, embedded at id - 50259
MASKED_MOTION_ID = 50259  # <masked_motion>
PAD_MOTION_ID = 50260  # <pad_motion> (motion-local 1 = padding_idx)
HOLDER_OUTPUT_ID = 50261  # <motion_latent_holder_output>
HOLDER_INPUT_ID = 50262  # <motion_latent_holder>


@dataclass(frozen=True)
class VaeConfig:
    """MLD motion VAE (skip-connected post-norm transformer encoder/decoder, one latent token)."""

    nfeats: int = 263
    latent_dim: int = 256  # width of the latent token and of the whole VAE
    latent_size: int = 1  # latent tokens per clip
    ff_size: int = 1024
    num_layers: int = 9  # odd: (n-1)/2 input blocks, 1 middle block, (n-1)/2 output blocks
    num_heads: int = 4
    dropout: float = 0.1
    max_positions: int = 500  # learned positional table rows (2 query tokens + up to 498 frames when encoding)
    latent_scale: float = 0.8457  # latent * scale enters the LM / diffusion space (`mean_std_inv`)

    def __post_init__(self) -> None:
        if self.num_layers % 2 != 1:
            raise ValueError(f"VaeConfig.num_layers must be odd for the skip (U-Net) wiring, got {self.num_layers}")


@dataclass(frozen=True)
class BackboneConfig:
    """Mixture-of-Transformers GPT-2: a text branch that is GPT-2 and a motion branch of the same sizes."""

    n_layer: int = 12
    n_embd: int = 768
    n_head: int = 12
    n_inner: int = 3072
    n_positions: int = 1024
    text_vocab_size: int = 50259  # GPT-2's 50257 + <start_of_motion>, <end_of_motion>
    motion_vocab_size: int = 6  # motion-branch embedding rows (ids - 50259; row 1 is padding)
    motion_padding_idx: int = 1
    dropout: float = 0.1  # embeddings, attention probabilities and residual branches
    layer_norm_epsilon: float = 1e-5
    activation: str = "gelu_new"
    holders_per_motion: int = 4  # placeholder tokens carrying one motion latent (in and out)

    def gpt2_config(self) -> Any:
        """The matching `transformers.GPT2Config` (text branch = plain GPT-2 with this vocabulary)."""
        from transformers import GPT2Config

        return GPT2Config(
            vocab_size=self.text_vocab_size,
            n_positions=self.n_positions,
            n_embd=self.n_embd,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_inner=self.n_inner,
            activation_function=self.activation,
            resid_pdrop=self.dropout,
            embd_pdrop=self.dropout,
            attn_pdrop=self.dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
            bos_token_id=EOS_ID,
            eos_token_id=EOS_ID,
            tie_word_embeddings=True,
        )


@dataclass(frozen=True)
class DiffusionConfig:
    """MAR-style diffusion head (`SimpleMLPAdaLN`) with a linear-beta DDPM, ε-prediction, respaced sampling."""

    width: int = 1024  # MLP width
    depth: int = 3  # AdaLN residual blocks
    num_timesteps: int = 1000
    sampling_steps: int = 100  # respaced ancestral steps at inference
    beta_start: float = 0.00085
    beta_end: float = 0.012  # "scaled_linear" upstream is plain linspace(beta_start, beta_end, T)
    cond_heads: int = 4  # the condition encoder's single transformer layer
    cond_ff_size: int = 3072
    cond_max_positions: int = 500
    batch_mul: int = 4  # each (condition, target) pair is trained with this many noise draws
    uncond_prob: float = 0.1  # CFG dropout: condition replaced by the learned fake latent
    guidance_scale: float = 7.5  # sampling CFG scale of the released configs
    temperature: float = 1.0
    # With several latent tokens, upstream's head denoises each token on its own (one condition row per token, no
    # exchange between tokens), so the tokens of one sample are drawn independently given the condition. True
    # denoises them as one [1, L·D] vector instead. Same as upstream when latent_size is 1 (the official model).
    joint_latent: bool = False


@dataclass(frozen=True)
class MotionGPT3Config:
    """The whole model. Cross-module sizes (latent width, hidden width) are derived, never repeated."""

    name: str = "official"
    vae: VaeConfig = field(default_factory=VaeConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    max_prompt_tokens: int = 192
    fps: float = 20.0
    min_frames: int = 20
    max_frames: int = 196
    caption_max_new_tokens: int = 40
    repetition_penalty: float = 1.1

    @property
    def latent_dim(self) -> int:
        """Width of one motion latent (VAE output = diffusion target)."""
        return self.vae.latent_dim

    @property
    def diffusion_target_shape(self) -> tuple[int, int]:
        """One diffusion sample [rows, width]: the L latent tokens [L, D], or one [1, L·D] row (`joint_latent`)."""
        tokens, width = self.vae.latent_size, self.latent_dim
        return (1, tokens * width) if self.diffusion.joint_latent else (tokens, width)

    @property
    def hidden_dim(self) -> int:
        """Width of the backbone's hidden states (= diffusion condition width)."""
        return self.backbone.n_embd

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for the config file beside a safetensors checkpoint)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MotionGPT3Config:
        """Inverse of `to_dict`; unknown keys are an error naming the key."""
        parts = {"vae": VaeConfig, "backbone": BackboneConfig, "diffusion": DiffusionConfig}
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ValueError(f"model config: unknown key {unknown[0]!r}")
        kwargs = dict(data)
        for key, part in parts.items():
            if key in kwargs:
                part_known = {f.name for f in dataclasses.fields(part)}
                if unknown := sorted(set(kwargs[key]) - part_known):
                    raise ValueError(f"model config: unknown key {key}.{unknown[0]!r}")
                kwargs[key] = part(**kwargs[key])
        return cls(**kwargs)


def official_config() -> MotionGPT3Config:
    """The published architecture (loads the official checkpoint key for key; 256,279,047 parameters)."""
    return MotionGPT3Config()


def demo_config() -> MotionGPT3Config:
    """A small model of the same architecture, trainable on a laptop CPU in well under an hour."""
    return MotionGPT3Config(
        name="demo",
        # No dropout: on a CPU, attention dropout sends torch's SDPA to its slow path (10x per call, measured),
        # and a small model on synthetic data gains little from it.
        vae=VaeConfig(latent_dim=64, ff_size=256, num_layers=3, num_heads=4, dropout=0.0),
        backbone=BackboneConfig(n_layer=4, n_embd=128, n_head=4, n_inner=512, n_positions=256, dropout=0.0),
        diffusion=DiffusionConfig(width=256, depth=2, cond_heads=4, cond_ff_size=512),
    )


def tiny_config() -> MotionGPT3Config:
    """A minimal configuration for fast unit tests (same wiring, smallest sizes)."""
    return MotionGPT3Config(
        name="tiny",
        vae=VaeConfig(latent_dim=16, ff_size=32, num_layers=3, num_heads=2, dropout=0.0, max_positions=256),
        backbone=BackboneConfig(n_layer=2, n_embd=32, n_head=2, n_inner=64, n_positions=256, dropout=0.0),
        diffusion=DiffusionConfig(width=32, depth=2, cond_heads=2, cond_ff_size=64, cond_max_positions=16),
    )


PRESETS = {"official": official_config, "demo": demo_config, "tiny": tiny_config}
