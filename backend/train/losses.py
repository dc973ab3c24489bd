"""Training losses: the shifted text cross-entropy, the diffusion loss on output holders, the VAE losses."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from backend.model.vae import MotionVae

from .data import IGNORE

JOINT_DIMS = slice(4, 67)  # root-relative joint positions (21 × 3) of the 263-dim layout
ROOT_DIMS = slice(0, 4)  # root turn rate, forward and sideways step, pelvis height
# The limbs' far joints: knees, ankles, feet, elbows, wrists (HumanML3D joint order). A kick or a wave moves only
# these, for a second or two of a clip: a few dims of a few frames of the average `recon` / `joints` loss.
LIMB_JOINTS = (4, 5, 7, 8, 10, 11, 18, 19, 20, 21)
# Their root-relative positions (dims 4 + 3(j-1)) and local velocities (dims 193 + 3j) in the 263-dim layout.
LIMB_DIMS = tuple(4 + 3 * (j - 1) + k for j in LIMB_JOINTS for k in range(3)) + tuple(
    193 + 3 * j + k for j in LIMB_JOINTS for k in range(3)
)


def text_loss(lm: nn.Module, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the text vocabulary (spec §7.2).

    hidden [B, S, D] final states; labels [B, S] from `text_labels`. Position j-1 predicts labels[j]; only
    positions whose next label is not IGNORE count (motion-branch tokens, EOM and padding are IGNORE), so
    logits are computed for those rows only. Returns 0 (with a graph) when no position counts.
    """
    targets = labels[:, 1:]
    keep = targets != IGNORE  # [B, S-1]
    if not bool(keep.any()):
        return hidden.sum() * 0.0
    logits = lm.text_logits(hidden[:, :-1][keep]).float()  # [N, text_vocab]
    return functional.cross_entropy(logits, targets[keep])


def diffusion_loss(
    diffloss: nn.Module,
    targets: torch.Tensor,
    condition: torch.Tensor,
    generator: torch.Generator | None,
    null_cond: torch.Tensor | None,
) -> torch.Tensor:
    """ε-MSE of the diffusion head: targets [M, L·D] (LM-space latents, tokens flattened), condition [M, 4, H]
    (spec §6.3)."""
    target = targets.reshape(len(targets), *diffloss.target_shape).float()  # [M, L, D]
    return diffloss.loss(target, condition, generator, null_cond=null_cond)


def vae_losses(
    vae: MotionVae,
    features: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator | None,
    posterior_noise: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Reconstruction of normalised features [B, T, 263] through a posterior sample (spec §4.4) whose noise is
    scaled by `posterior_noise` (1 = the spec; 0 = the posterior mean).

    Returns `recon` (SmoothL1 over valid frames), `joints` (SmoothL1 on dims 4..66, valid frames), `root` (SmoothL1
    on dims 0..3, valid frames), `limbs` (SmoothL1 on `LIMB_DIMS`, valid frames), `kl` (KL to N(0, I), mean over
    elements) and `latent_std` (std of μ over the batch, for choosing latent_scale).
    """
    mu, logvar = vae.encode_distribution(features, lengths)  # [B, L, D] each
    noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + posterior_noise * torch.exp(0.5 * logvar) * noise
    recon = vae.decode(z, lengths)  # [B, max(lengths), 263]
    target = features[:, : recon.shape[1]]
    limbs = list(LIMB_DIMS)
    return {
        "recon": vae.reconstruction_loss(recon, target, lengths),
        "joints": vae.reconstruction_loss(recon[..., JOINT_DIMS], target[..., JOINT_DIMS], lengths),
        "root": vae.reconstruction_loss(recon[..., ROOT_DIMS], target[..., ROOT_DIMS], lengths),
        "limbs": vae.reconstruction_loss(recon[..., limbs], target[..., limbs], lengths),
        "kl": vae.kl_loss(mu, logvar),
        "latent_std": mu.detach().float().std(),
    }
