"""MAR-style diffusion head: `SimpleMLPAdaLN` ε-predictor, linear-β DDPM schedule, loss and respaced CFG sampling."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from backend.model.config import MotionGPT3Config
from backend.model.rows import ROW_MULTIPLE, pad_rows, stable_rows
from backend.model.vae import LearnedPositions

# The condition encoder's dropout is fixed upstream (`hiddenEmbedWithAtt(dropout=0.1)`), not a config size.
COND_DROPOUT = 0.1
TIMESTEP_FREQUENCIES = 256  # width of the sinusoidal timestep features (DiT `frequency_embedding_size`)
# Rows (steps x samples) of step conditioning computed per batched call while sampling: wide enough that the
# AdaLN matmuls run as GEMMs rather than one matrix-vector product per step, small enough to bound memory.
STEP_CONDITION_ROWS = 256
# torch's CPU normal sampler fills float tensors in blocks of 16 values; when one draw is a multiple of that,
# n consecutive draws equal one draw of n times the size (pinned by tests/test_fast_path.py).
_CPU_NORMAL_BLOCK = 16

Generators = torch.Generator | Sequence[torch.Generator] | None


class GenerationCancelled(Exception):  # noqa: N818  (the public name other modules import)
    """Raised by `DiffusionHead.sample` when its `should_cancel` callback returns True."""


def randn_like_rows(shape: Sequence[int], generators: Generators, device: torch.device | str) -> torch.Tensor:
    """Standard normal float32 noise of `shape` on `device`.

    `generators` may be None (the device's global RNG), one generator (the whole tensor drawn at once), or
    one generator per row (row i drawn from generators[i] alone, so it does not depend on the other rows).
    Draws happen on the generator's own device and are then moved, so a CPU generator gives the same
    numbers whatever device the model runs on.
    """
    shape = tuple(shape)
    if generators is None:
        return torch.randn(shape, device=device)
    if isinstance(generators, torch.Generator):
        return torch.randn(shape, generator=generators, device=generators.device).to(device)
    if len(generators) != shape[0]:
        raise ValueError(f"randn_like_rows: {len(generators)} generators for {shape[0]} rows")
    rows = [torch.randn(shape[1:], generator=g, device=g.device).to(device) for g in generators]
    return torch.stack(rows)


def _consecutive_normals(count: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """[count, *shape]: the numbers of `count` consecutive torch.randn(shape, generator=generator) calls."""
    device = generator.device
    if device.type == "cpu" and math.prod(shape) % _CPU_NORMAL_BLOCK == 0:
        return torch.randn((count, *shape), generator=generator, device=device)
    return torch.stack([torch.randn(shape, generator=generator, device=device) for _ in range(count)])


def draw_chain_noise(
    count: int, shape: Sequence[int], generators: Generators, device: torch.device | str
) -> torch.Tensor:
    """[count, *shape] on `device`: the same numbers as `count` successive `randn_like_rows(shape, generators)`.

    Drawing a whole sampling chain's noise up front takes one call per generator instead of one per step and row,
    and one host-to-device copy (from pinned memory on CUDA) instead of one per step.
    """
    shape = tuple(shape)
    if generators is None:
        return torch.stack([torch.randn(shape, device=device) for _ in range(count)])
    if isinstance(generators, torch.Generator):
        noise = _consecutive_normals(count, shape, generators)
    else:
        if len(generators) != shape[0]:
            raise ValueError(f"draw_chain_noise: {len(generators)} generators for {shape[0]} rows")
        noise = torch.stack([_consecutive_normals(count, shape[1:], g) for g in generators], dim=1)
    device = torch.device(device)
    if device.type == "cuda" and noise.device.type == "cpu":
        return noise.pin_memory().to(device, non_blocking=True)
    return noise.to(device)


def _draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


def respaced_timesteps(num_timesteps: int, steps: int) -> np.ndarray:
    """The `steps` original timesteps kept by upstream `space_timesteps(T, str(steps))`, ascending.

    Upstream accumulates the float stride (T−1)/(S−1) and rounds each partial sum with Python's round;
    that is round(k·(T−1)/(S−1)) (for S = 100: 0, 10, 20, 30, 40, 50, 61, 71, …, 989, 999) except at a few
    exact-half ties for unusual S, where the accumulated value decides, as upstream.
    """
    if not 2 <= steps <= num_timesteps:
        raise ValueError(f"sampling steps must be in 2..{num_timesteps}, got {steps}")
    stride = (num_timesteps - 1) / (steps - 1)
    kept, position = [], 0.0
    for _ in range(steps):
        kept.append(round(position))
        position += stride
    return np.asarray(kept, dtype=np.int64)


class GaussianSchedule:
    """A DDPM noise schedule (float64 numpy) with the quantities ancestral sampling and `q_sample` need.

    `timesteps[k]` is the original (1000-step) index of chain step k: arange(T) for the base schedule, the
    kept steps for a respaced one. The network is always called with these original indices.
    """

    def __init__(self, betas: np.ndarray, timesteps: np.ndarray | None = None) -> None:
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) < 2 or not ((betas > 0) & (betas <= 1)).all():
            raise ValueError("GaussianSchedule: betas must be a 1-D array of at least 2 values in (0, 1]")
        self.betas = betas  # [K]
        self.timesteps = np.arange(len(betas)) if timesteps is None else np.asarray(timesteps, dtype=np.int64)
        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)  # ᾱ_k
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])  # ᾱ_{k−1}, 1 before the first
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)
        # q(x_{k−1} | x_k, x0) = N(coef1·x0 + coef2·x_k, posterior_variance); "fixed small" σ² = that variance.
        one_minus = 1.0 - self.alphas_cumprod
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / one_minus
        # σ²_0 = 0; its log is replaced by step 1's, as upstream (only used where noise is masked anyway).
        self.posterior_log_variance_clipped = np.log(np.append(self.posterior_variance[1], self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / one_minus
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / one_minus
        self._order_on: dict[torch.device, torch.Tensor] = {}

    @classmethod
    def linear(cls, beta_start: float, beta_end: float, num_timesteps: int) -> GaussianSchedule:
        """Plain linear betas linspace(beta_start, beta_end, T) (upstream's `scaled_linear` in this repo)."""
        return cls(np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64))

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    def respaced(self, steps: int) -> GaussianSchedule:
        """The chain over the kept steps s_k, with β'_k = 1 − ᾱ[s_k]/ᾱ[s_{k−1}] (ᾱ before the first = 1)."""
        kept = respaced_timesteps(self.num_steps, steps)
        kept_alphas_cumprod = self.alphas_cumprod[kept]
        betas = 1.0 - kept_alphas_cumprod / np.append(1.0, kept_alphas_cumprod[:-1])
        return GaussianSchedule(betas, self.timesteps[kept])

    def sampling_order(self, device: torch.device) -> torch.Tensor:
        """`timesteps` in sampling order (last first) as a [K] long tensor on `device`, made once per device."""
        if device not in self._order_on:
            self._order_on[device] = torch.as_tensor(self.timesteps[::-1].copy(), device=device)
        return self._order_on[device]

    def ancestral_step(
        self, k: int, x: torch.Tensor, eps: torch.Tensor, noise: torch.Tensor | None, temperature: float = 1.0
    ) -> torch.Tensor:
        """x_k -> x_{k-1}: the posterior mean from ε̂ (x̂0 not clipped) plus σ_k·temperature·noise; x_0 = the mean."""
        x0 = float(self.sqrt_recip_alphas_cumprod[k]) * x - float(self.sqrt_recipm1_alphas_cumprod[k]) * eps
        mean = float(self.posterior_mean_coef1[k]) * x0 + float(self.posterior_mean_coef2[k]) * x
        if k == 0:
            return mean
        if noise is None:
            raise ValueError("ancestral_step: steps k > 0 need noise")
        return mean + math.exp(0.5 * self.posterior_log_variance_clipped[k]) * temperature * noise

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·noise; x0, noise [N, ...], t [N] chain indices of this schedule."""
        index = t.detach().cpu().numpy()
        shape = (-1,) + (1,) * (x0.dim() - 1)
        a = torch.as_tensor(self.sqrt_alphas_cumprod[index], dtype=x0.dtype, device=x0.device).view(shape)
        b = torch.as_tensor(self.sqrt_one_minus_alphas_cumprod[index], dtype=x0.dtype, device=x0.device).view(shape)
        return a * x0 + b * noise


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features [N, dim] of timesteps t [N]: [cos(t·f_i), sin(t·f_i)], f_i = max_period^(−i/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]  # [N, half]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # cos half first, as upstream
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class TimestepEmbedder(nn.Module):
    """t [N] -> sinusoid(256) -> Linear -> SiLU -> Linear -> [N, width]."""

    def __init__(self, width: int, frequencies: int = TIMESTEP_FREQUENCIES) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(frequencies, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        features = timestep_embedding(t, self.frequencies).to(self.mlp[0].weight.dtype)
        return self.mlp(features)


class ConditionEncoder(nn.Module):
    """Upstream `hiddenEmbedWithAtt`: [summary token; c_1..c_H] + learned PE -> one post-norm encoder layer.

    c [N, H, Z] -> output row(s) of the learned summary token(s) -> Linear(Z -> width) -> [N, L, width].
    """

    def __init__(self, z_channels: int, width: int, latent_size: int, heads: int, ff_size: int, positions: int):
        super().__init__()
        self.hidden_embedding = nn.Parameter(torch.randn(latent_size, z_channels))  # [L, Z], randn as upstream
        self.hid_pos = LearnedPositions(positions, z_channels)
        self.hid_encoder_layer = nn.TransformerEncoderLayer(
            z_channels, heads, ff_size, COND_DROPOUT, activation="gelu", norm_first=False, batch_first=False
        )
        self.cond_proj = nn.Linear(z_channels, width)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        n = c.shape[0]
        summary = self.hidden_embedding[:, None, :].expand(-1, n, -1)  # [L, N, Z]
        sequence = self.hid_pos(torch.cat([summary, c.transpose(0, 1)], dim=0))  # [L+H, N, Z], sequence-first
        out = self.hid_encoder_layer(sequence)[: summary.shape[0]]  # [L, N, Z]
        return self.cond_proj(out.transpose(0, 1))  # [N, L, width]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class ResBlock(nn.Module):
    """AdaLN residual MLP: x + gate·MLP(LN(x)·(1+scale)+shift), (shift, scale, gate) from SiLU(y)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.in_ln = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))

    def modulation(self, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """y [..., W] -> (shift, scale, gate), each [..., W]; independent of x."""
        return self.adaLN_modulation(y).chunk(3, dim=-1)

    def modulated(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return x + gate * self.mlp(modulate(self.in_ln(x), shift, scale))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.modulated(x, *self.modulation(y))


class FinalLayer(nn.Module):
    """DiT final layer: affine-free LN, AdaLN (shift, scale) from SiLU(y), Linear(width -> out)."""

    def __init__(self, width: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(width, out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def modulation(self, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """y [..., W] -> (shift, scale), each [..., W]; independent of x."""
        return self.adaLN_modulation(y).chunk(2, dim=-1)

    def modulated(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.linear(modulate(self.norm_final(x), shift, scale))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.modulated(x, *self.modulation(y))


class SimpleMLPAdaLN(nn.Module):
    """The ε-predictor ε̂(x_t, t, c): x [N, L, D], t [N] original timesteps, c [N, H, Z] -> [N, L, D].

    `forward` = `denoise(x, t, cond_embed(c))`; the split lets sampling encode the condition once (it does
    not depend on x or t, so this equals upstream's per-step recomputation in eval mode). Likewise everything
    the AdaLN layers compute from (t, condition) is independent of x: `modulations` computes it for many
    sampling steps in one batched call and `denoise_modulated` runs only the x-dependent part of one step.
    """

    def __init__(self, config: MotionGPT3Config) -> None:
        super().__init__()
        d = config.diffusion
        rows, row_width = config.diffusion_target_shape
        self.time_embed = TimestepEmbedder(d.width)
        self.input_proj = nn.Linear(row_width, d.width)
        self.cond_embed = ConditionEncoder(
            config.hidden_dim, d.width, rows, d.cond_heads, d.cond_ff_size, d.cond_max_positions
        )
        self.res_blocks = nn.ModuleList(ResBlock(d.width) for _ in range(d.depth))
        self.final_layer = FinalLayer(d.width, row_width)

    def _modulations_of(self, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """y [..., W] -> every layer's AdaLN terms in order: 3 per residual block, then the final layer's 2."""
        layers = [*self.res_blocks, self.final_layer]
        return tuple(term for layer in layers for term in layer.modulation(y))

    def modulations(self, t: torch.Tensor, cond_emb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Sampling steps' original timesteps t [K] and cond_emb [N, L, W] -> AdaLN terms, each [K, N, L, W]."""
        return self.modulations_at(self.time_embed(t), cond_emb)

    def modulations_at(self, step_embeddings: torch.Tensor, cond_emb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`modulations` from the steps' timestep embeddings [K, W] (`time_embed(t)`). The K·N·L rows run as one
        matmul padded to a multiple of 4 rows on the CPU (batch-invariant rounding, `rows.py`)."""
        y = step_embeddings[:, None, None, :] + cond_emb[None]  # [K, N, L, W]
        flat = y.reshape(-1, y.shape[-1])  # [K·N·L, W]
        rows = flat.shape[0]
        terms = self._modulations_of(pad_rows(flat, stable_rows(rows, flat.device)))
        return tuple(term[:rows].reshape(*y.shape[:-1], term.shape[-1]) for term in terms)

    def denoise_modulated(self, x: torch.Tensor, terms: Sequence[torch.Tensor]) -> torch.Tensor:
        """x [N, L, D] and one step's AdaLN terms (each [N, L, W]) -> ε̂ [N, L, D]."""
        h = self.input_proj(x)  # [N, L, W]
        for i, block in enumerate(self.res_blocks):
            h = block.modulated(h, *terms[3 * i : 3 * i + 3])
        return self.final_layer.modulated(h, *terms[-2:])

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond_emb: torch.Tensor) -> torch.Tensor:
        """x [N, L, D], t [N], cond_emb [N, L, W] (from `cond_embed`) -> ε̂ [N, L, D]."""
        return self.denoise_modulated(x, self._modulations_of(self.time_embed(t).unsqueeze(1) + cond_emb))

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.denoise(x, t, self.cond_embed(c))


class DiffusionHead(nn.Module):
    """Upstream `DiffLoss`: the network at `net` (state-dict keys `net.*`) plus its DDPM schedules.

    The CFG null condition (`lm.fake_latent`) belongs to the language model and is passed in.
    """

    def __init__(self, config: MotionGPT3Config) -> None:
        super().__init__()
        self.config = config.diffusion
        self.target_shape = config.diffusion_target_shape  # one sample is [L, D] = [1, 256] (or [1, L·D], joint)
        self.cond_shape = (config.backbone.holders_per_motion, config.hidden_dim)  # [H, Z] = [4, 768]
        self.net = SimpleMLPAdaLN(config)
        d = self.config
        self.schedule = GaussianSchedule.linear(d.beta_start, d.beta_end, d.num_timesteps)  # training chain
        self._respaced: dict[int, GaussianSchedule] = {}
        self.cuda_graphs = True  # sample on CUDA through captured graphs (set False to run the loop eagerly)
        self._graphs: dict[tuple, _CapturedChain] = {}

    def sampling_schedule(self, steps: int | None = None) -> GaussianSchedule:
        """The respaced chain for `steps` ancestral steps (default `sampling_steps`), cached."""
        steps = self.config.sampling_steps if steps is None else int(steps)
        if steps not in self._respaced:
            self._respaced[steps] = self.schedule.respaced(steps)
        return self._respaced[steps]

    def _check_cond(self, cond: torch.Tensor) -> None:
        if cond.dim() != 3 or tuple(cond.shape[1:]) != self.cond_shape:
            raise ValueError(
                f"diffusion condition must be [N, {self.cond_shape[0]}, {self.cond_shape[1]}], got {list(cond.shape)}"
            )

    def loss(
        self,
        target: torch.Tensor,
        cond: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        null_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ε-MSE over `batch_mul` noisy copies of each pair; target [M, L, D], cond [M, H, Z] -> scalar.

        With `null_cond` [H, Z] (the learned fake latent), each replicated condition is replaced by it with
        probability `uncond_prob` (CFG dropout); gradients reach `null_cond` through the replaced rows.
        """
        self._check_cond(cond)
        if tuple(target.shape[1:]) != self.target_shape or target.shape[0] != cond.shape[0]:
            raise ValueError(
                f"diffusion target must be [{cond.shape[0]}, {self.target_shape[0]}, "
                f"{self.target_shape[1]}], got {list(target.shape)}"
            )
        d, device = self.config, target.device
        x0 = target.repeat(d.batch_mul, 1, 1)  # [n, L, D], n = M·batch_mul
        c = cond.repeat(d.batch_mul, 1, 1)  # [n, H, Z]
        n, draw = x0.shape[0], _draw_device(generator, device)
        t = torch.randint(0, d.num_timesteps, (n,), generator=generator, device=draw)  # [n] on the draw device
        noise = randn_like_rows(x0.shape, generator, device)  # [n, L, D]
        if null_cond is not None and d.uncond_prob > 0:
            drop = torch.rand(n, generator=generator, device=draw).to(device) < d.uncond_prob  # [n]
            c = torch.where(drop[:, None, None], null_cond.to(c.dtype).expand_as(c), c)
        x_t = self.schedule.q_sample(x0, t.to(device), noise)
        eps = self.net(x_t, t.to(device), c)
        return nn.functional.mse_loss(eps.float(), noise)

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor,
        null_cond: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
        steps: int | None = None,
        generator: Generators = None,
        progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> torch.Tensor:
        """Ancestral DDPM over the respaced chain: cond [B, H, Z] -> latents [B, L, D] (call in eval mode).

        `generator`: None (global RNG), one generator, or a list of B generators (row i's noise, hence its
        sample, depends only on generators[i]). CFG when guidance_scale != 1: ε = ε_u + s·(ε_c − ε_u) with the
        network run on [x; x] against [cond; null_cond]. Upstream keeps a doubled state and draws noise for
        both halves but only ever reads the first, so keeping one half gives the same distribution (not the
        same numbers as upstream's global-RNG stream). Noise is drawn for k > 0 only (x_0 = μ), x_T first.
        `progress(done, total)` after each step; `should_cancel()` before each network call. On CUDA (with
        `cuda_graphs`) the whole chain is one captured graph: cancellation is checked before it and progress
        reported after it.
        """
        self._check_cond(cond)
        guided = guidance_scale != 1.0
        if guided and null_cond is None:
            raise ValueError("classifier-free guidance (guidance_scale != 1) needs null_cond")
        chain = self.sampling_schedule(steps)
        b, device = cond.shape[0], cond.device
        # Batch-invariant rows on the CPU (`rows.py`): the chain runs x rows [2X, ...] under CFG (X even) and the
        # condition encoder a multiple of 4 rows (C conditional + the null one); the extra rows copy row 0 and
        # their samples are dropped.
        x_rows = stable_rows(b, device, 2 if guided else ROW_MULTIPLE)
        cond = pad_rows(cond, stable_rows(x_rows + guided, device) - guided)  # [C, H, Z], C >= X
        if guided:  # the null condition is the same for every row: encoded (and AdaLN-projected) once
            cond = torch.cat([cond, null_cond.to(cond.dtype)[None]])  # [C+1, H, Z], the null row last
        cond_emb = self.net.cond_embed(cond)  # [C or C+1, L, W], computed once (independent of x, t)
        noise = draw_chain_noise(chain.num_steps, (b, *self.target_shape), generator, device)  # [K, B, L, D]
        if x_rows > b:
            noise = torch.cat([noise, noise.new_zeros(noise.shape[0], x_rows - b, *noise.shape[2:])], dim=1)
        if device.type == "cuda" and self.cuda_graphs:
            if should_cancel is not None and should_cancel():
                raise GenerationCancelled(f"diffusion sampling cancelled after 0 of {chain.num_steps} steps")
            x = self._graphed_chain(cond_emb, noise, chain, guidance_scale)
            if progress is not None:
                progress(chain.num_steps, chain.num_steps)
        else:
            x = self._denoise_chain(cond_emb, noise, chain, guidance_scale, progress, should_cancel)
        return x[:b].to(cond.dtype)

    def _denoise_chain(
        self,
        cond_emb: torch.Tensor,
        noise: torch.Tensor,
        chain: GaussianSchedule,
        guidance_scale: float,
        progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> torch.Tensor:
        """The sampling loop: cond_emb [C, L, W] (C >= B), or [C+1, L, W] under CFG (last row: the null
        condition's), noise [K, B, L, D] from `draw_chain_noise` (x_T, then the noise of steps K−1 … 1) -> x_0
        [B, L, D] float32; row i of x is conditioned on row i of cond_emb.

        Under CFG the network runs on [x; x] against [cond rows; B copies of the null row] in one call. The
        timestep embeddings of the whole chain are computed in one call, so their numbers do not depend on how
        many steps the batch size lets one AdaLN call cover."""
        total, guided = chain.num_steps, guidance_scale != 1.0
        b = noise.shape[1]
        cond_emb = torch.cat([cond_emb[:b], cond_emb[-1:]]) if guided else cond_emb[:b]  # the rows x needs
        order = chain.sampling_order(cond_emb.device)  # [K]
        step_embeddings = self.net.time_embed(order)  # [K, W]
        per_call = max(1, STEP_CONDITION_ROWS // cond_emb.shape[0])  # steps whose AdaLN terms one call computes
        x, terms = noise[0], ()
        for j in range(total):
            k = total - 1 - j
            if should_cancel is not None and should_cancel():
                raise GenerationCancelled(f"diffusion sampling cancelled after {j} of {total} steps")
            if j % per_call == 0:
                terms = self.net.modulations_at(step_embeddings[j : j + per_call], cond_emb)  # each [c, C(+1), L, W]
                if guided:  # the null row repeated for the B unconditional rows: each [c, 2B, L, W]
                    terms = [torch.cat([t[:, :b], t[:, -1:].expand(-1, b, *t.shape[2:])], dim=1) for t in terms]
            x_in = torch.cat([x, x]) if guided else x
            eps = self.net.denoise_modulated(x_in.to(cond_emb.dtype), [t[j % per_call] for t in terms]).float()
            if guided:
                eps = guided_epsilon(eps, guidance_scale)
            x = chain.ancestral_step(k, x, eps, noise[j + 1] if k > 0 else None, self.config.temperature)
            if progress is not None:
                progress(j + 1, total)
        return x

    def _graphed_chain(
        self, cond_emb: torch.Tensor, noise: torch.Tensor, chain: GaussianSchedule, guidance_scale: float
    ) -> torch.Tensor:
        """`_denoise_chain` replayed from a CUDA graph captured once per (batch bucket, steps, guidance, dtype).

        The batch is padded to the next power of two (rows are independent: padding rows cannot change the
        others), so a server's varying micro-batches reuse a handful of graphs.
        """
        b = noise.shape[1]
        bucket = 1 << (b - 1).bit_length()
        if bucket != b:
            pad = bucket - b
            noise = torch.cat([noise, noise.new_zeros(noise.shape[0], pad, *noise.shape[2:])], dim=1)
            rows = cond_emb[:b]
            cond_emb = torch.cat([rows, rows[:1].expand(pad, -1, -1), cond_emb[b:]])  # null row (CFG) stays last
        autocast_dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None
        key = (bucket, chain.num_steps, float(guidance_scale), cond_emb.dtype, autocast_dtype, cond_emb.device)
        if key not in self._graphs:
            self._graphs[key] = _CapturedChain(self, cond_emb, noise, chain, guidance_scale, autocast_dtype)
        return self._graphs[key].replay(cond_emb, noise)[:b]


def guided_epsilon(eps: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: ε [2B, ...] = [ε_c; ε_u] -> ε_u + s·(ε_c − ε_u) [B, ...]."""
    eps_c, eps_u = eps.chunk(2)
    return eps_u + guidance_scale * (eps_c - eps_u)


class _CapturedChain:
    """One CUDA graph of `DiffusionHead._denoise_chain` with its static input and output buffers."""

    def __init__(
        self,
        head: DiffusionHead,
        cond_emb: torch.Tensor,
        noise: torch.Tensor,
        chain: GaussianSchedule,
        guidance_scale: float,
        autocast_dtype: torch.dtype | None,
    ) -> None:
        self.cond_emb, self.noise = cond_emb.clone(), noise.clone()
        chain.sampling_order(cond_emb.device)  # cached before capturing: no host-to-device copy inside the graph

        def run() -> torch.Tensor:
            # The autocast weight cache must be off while capturing (torch's CUDA-graph + autocast rule).
            with torch.autocast(
                "cuda", dtype=autocast_dtype or torch.float16, enabled=autocast_dtype is not None, cache_enabled=False
            ):
                return head._denoise_chain(self.cond_emb, self.noise, chain, guidance_scale)

        side = torch.cuda.Stream(device=cond_emb.device)
        side.wait_stream(torch.cuda.current_stream(cond_emb.device))
        with torch.cuda.stream(side):  # warm-up outside the graph (lazy initialisation, kernel selection)
            run()
        torch.cuda.current_stream(cond_emb.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = run()

    def replay(self, cond_emb: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        self.cond_emb.copy_(cond_emb)
        self.noise.copy_(noise)
        self.graph.replay()
        return self.output.clone()
