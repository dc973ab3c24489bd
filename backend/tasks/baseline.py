"""The straightforward MotionGPT3 inference, as upstream runs it: the reference for speed-ups and fast-path tests.

Same weights and the same mathematics as `backend.tasks.inference`, none of its shortcuts: one request at a time
(batch 1), prompts padded to the fixed 192 tokens (spec §3.1), fp32 without autocast, the whole diffusion network
called at every step (condition encoder and AdaLN terms recomputed, as upstream's `forward_with_cfg`), noise drawn
step by step, torch's VAE decoder layers as they are, and captions decoded by re-running the whole sequence for
every new token (no KV cache).
"""

from __future__ import annotations

import numpy as np
import torch

from backend.model.config import EOS_ID, MOTION_TOKEN_START
from backend.model.diffusion_head import DiffusionHead, guided_epsilon, randn_like_rows
from backend.model.motiongpt3 import MotionGPT3
from backend.model.tokenizer import TokenBatch, tokenize_batch
from backend.tasks.inference import (
    _check_clip,
    _check_frames,
    _input_latents,
    caption_prompt,
    caption_text,
    next_token_logits,
    request_generator,
    text_to_motion_prompt,
)


@torch.no_grad()
def reference_sample(
    head: DiffusionHead,
    cond: torch.Tensor,
    null_cond: torch.Tensor | None,
    guidance_scale: float,
    steps: int | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """Ancestral DDPM with the network called whole at each step: cond [B, H, Z] -> latents [B, L, D]."""
    chain = head.sampling_schedule(steps)
    guided = guidance_scale != 1.0
    b, device = cond.shape[0], cond.device
    c = torch.cat([cond, null_cond.expand(b, -1, -1)]) if guided else cond  # [2B or B, H, Z]
    x = randn_like_rows((b, *head.target_shape), generator, device)  # x_T
    for k in reversed(range(chain.num_steps)):
        t = torch.full((c.shape[0],), int(chain.timesteps[k]), dtype=torch.long, device=device)
        eps = head.net(torch.cat([x, x]) if guided else x, t, c)
        if guided:
            eps = guided_epsilon(eps, guidance_scale)
        noise = randn_like_rows(x.shape, generator, device) if k > 0 else None
        x = chain.ancestral_step(k, x, eps, noise, head.config.temperature)
    return x


@torch.no_grad()
def reference_text_to_motion(
    model: MotionGPT3,
    text: str,
    frames: int,
    seed: int = 0,
    candidate: int = 0,
    guidance: float | None = None,
    steps: int | None = None,
) -> np.ndarray:
    """One text-to-motion request -> raw features [frames, 263]; the same result as candidate `candidate` of
    `text_to_motion(model, [text], frames, seed)` up to floating-point rounding."""
    decode = _check_frames(model, frames)
    guidance = model.config.diffusion.guidance_scale if guidance is None else float(guidance)
    prompt = text_to_motion_prompt(model, text.strip())
    tokens = tokenize_batch([prompt], model.config.max_prompt_tokens, padding_side="right", pad_to_max=True)
    condition = model.motion_condition(tokens)  # [1, 4, hidden] from a 192-token forward
    generator = request_generator(seed, candidate)
    latent = reference_sample(model.diffloss, condition, model.fake_latent, guidance, steps, generator)[:, 0]
    decoded = reference_decode(model, model.from_lm_space(latent), torch.tensor([decode], device=model.device))
    return model.denormalize(decoded[0])[:frames].cpu().numpy()


def reference_decode(model: MotionGPT3, latents: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """VAE latents [B, D] -> normalised features [B, max(lengths), 263] through torch's decoder layers as they are."""
    return model.vae.decode(latents[:, None], lengths, shortcut=False)


def reference_caption(model: MotionGPT3, features: np.ndarray, max_new_tokens: int | None = None) -> str:
    """Greedy caption of one raw clip, re-running the whole (192-token, left-padded) sequence for every token."""
    return caption_text(reference_caption_tokens(model, features, max_new_tokens))


@torch.no_grad()
def reference_caption_tokens(model: MotionGPT3, features: np.ndarray, max_new_tokens: int | None = None) -> list[int]:
    """The generated token ids (without EOS) of `reference_caption`."""
    clip = _check_clip(features, "features", min_frames=2)
    max_new = model.config.caption_max_new_tokens if max_new_tokens is None else int(max_new_tokens)
    latent = _input_latents(model, [clip], sample=False, seeds=None)  # [1, D], LM space
    prompt = tokenize_batch([caption_prompt(model)], model.config.max_prompt_tokens, "left", pad_to_max=True)
    device = model.device
    generated = torch.zeros((1, 0), dtype=torch.long, device=device)
    for _ in range(max_new):
        ids = torch.cat([prompt.ids.to(device), generated], dim=1)  # [1, 192 + n]
        mask = torch.cat([prompt.attention_mask.to(device), torch.ones_like(generated)], dim=1)
        tokens = TokenBatch(ids, mask, (mask.cumsum(-1) - 1).clamp(min=0))
        embeds, _ = model.embed_prompt(tokens, latent)
        hidden, _ = model.lm(embeds, (ids >= MOTION_TOKEN_START).long(), mask, tokens.position_ids)
        token = next_token_logits(model, hidden[:, -1], generated).argmax(-1)  # [1]
        if int(token) == EOS_ID:
            break
        generated = torch.cat([generated, token[:, None]], dim=1)
    return generated[0].tolist()
