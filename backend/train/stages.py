"""Training stages (spec §7.1): what trains, on which templates, with which optimizer groups, schedule and losses.

Chain: `vae` (optional: train the motion VAE) -> `1` (text-to-motion, motion branch only) -> `2` (align t2m, m2t,
prediction, in-betweening on the plain prompts) -> `2b` (optional: instruction paraphrases and length prompts)
-> `3` (joint fine-tuning, text branch too, plus text-to-text). `2c` (captions alone), `2d` (text-to-motion and
captions alternating) and `2e` (stage 2's four tasks) follow `2` with the instruction masked out of the caption
loss. Each stage starts from the previous stage's `model.safetensors` (`--init`, strict).

Schedule (decided here, upstream's is accidental, §10 #12): per optimizer step, a linear warm-up over
`warmup_fraction` of the run, then cosine decay from each group's learning rate to `min_lr_ratio` × it at the
last step. No weight decay, no gradient clipping, AdamW β = (0.9, 0.99) as upstream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from backend.model.config import SOM_ID

HEAD_PREFIXES = ("motion_und_head.", "diffloss.", "fake_latent")
TEXT_EMBEDDING = "lm.transformer.wte.weight"
# GPT-2's own tensors outside the per-layer text branch (`fn.0`): frozen with it (upstream's rule: any name in
# the GPT-2 state dict is "text").
SHARED_GPT2 = (TEXT_EMBEDDING, "lm.transformer.wpe.weight")
UNUSED = ("lm.post_processors.1.weight",)  # motion logits head: no loss reaches it (`mot_loss: 'skip'`)


@dataclass(frozen=True)
class ParamGroup:
    """An optimizer group: parameters whose name starts with one of `prefixes` ("" = every other one)."""

    name: str
    prefixes: tuple[str, ...]
    lr: float


@dataclass(frozen=True)
class Stage:
    """One training stage."""

    name: str
    description: str
    trains: str  # "vae" | "motion" (text branch frozen, SOM/EOM rows of wte learn) | "all_but_vae"
    templates: tuple[str, ...]  # template files (empty: VAE stage, clips only)
    groups: tuple[ParamGroup, ...]  # first matching group wins
    text_weight: float = 0.0  # λ_text
    diff_weight: float = 1.0  # λ_diff
    cfg_dropout: bool = True  # replace conditions by `fake_latent` with p = 0.1 (every stage, §10 #11)
    mask_prompt: bool = False  # also drop prompt tokens from the text loss (padding is always dropped)
    joints_weight: float = 0.5  # VAE: SmoothL1 on feature dims 4..66 (root-relative joint positions)
    # VAE: SmoothL1 on feature dims 0..3 (root turn rate, steps, height), on top of their share of `recon`. In `recon`
    # they are 4 of 263 dims: a VAE trained on it alone turned a 380° spin into 50° and a 1 m sidestep into a turn.
    root_weight: float = 0.0
    # VAE: SmoothL1 on the limbs' far joints' positions and velocities (`losses.LIMB_DIMS`), on top of `recon`.
    limb_weight: float = 0.0
    kl_weight: float = 1e-4  # VAE: KL to N(0, I) (MLD's value; MotionGPT3's unused vae stage has 1e-5)
    # VAE: scale of the posterior noise in z = μ + scale·σ·ε (1 = MLD). A short run with σ still near the prior's 1
    # drowns all but a few latent dims in noise, so the decoder learns only coarse motion; a small scale fixes that.
    posterior_noise: float = 1.0
    # LM stages: motion latents are posterior samples (upstream) or posterior means (deterministic targets; for
    # a briefly trained VAE whose posterior is still wide, the mean is the part of the latent that carries the clip).
    posterior_samples: bool = True
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_fraction: float = 0.0
    min_lr_ratio: float = 0.1

    def lr_factor(self, step: int, total_steps: int) -> float:
        """Multiplier of every group's lr for the optimizer step `step` (0-based) of a `total_steps` run."""
        warmup = int(self.warmup_fraction * total_steps)
        if step < warmup:
            return (step + 1) / warmup
        span = max(total_steps - warmup - 1, 1)
        progress = min(max(step - warmup, 0) / span, 1.0)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


_ALL = ("",)
_ALIGN = Stage(
    name="2",
    description="alignment: t2m, m2t, prediction, in-betweening on the plain prompts; text branch frozen",
    trains="motion",
    templates=("pretrain.json",),
    groups=(ParamGroup("all", _ALL, 1e-4),),
    text_weight=1.0,
    diff_weight=0.5,
)
STAGES: dict[str, Stage] = {
    "vae": Stage(
        name="vae",
        description="motion VAE: feature reconstruction + joints + KL",
        trains="vae",
        templates=(),
        groups=(ParamGroup("vae", ("vae.",), 1e-4),),
    ),
    "1": Stage(
        name="1",
        description="uni-task pretraining: raw caption -> motion; motion branch and heads only",
        trains="motion",
        templates=("t2m.json",),
        groups=(ParamGroup("heads", HEAD_PREFIXES, 2e-4), ParamGroup("lm", _ALL, 1e-4)),
        text_weight=0.0,
        diff_weight=1.0,
    ),
    "2": _ALIGN,
    "2b": replace(
        _ALIGN,
        name="2b",
        description="instruction alignment: plain prompts + paraphrases and length prompts; text branch frozen",
        templates=("pretrain.json", "instructions.json"),
        groups=(ParamGroup("all", _ALL, 8e-5),),
    ),
    "2c": replace(
        _ALIGN,
        name="2c",
        description="caption alignment: motion -> text on the plain prompt, loss on the caption tokens only",
        templates=("m2t.json",),
        mask_prompt=True,
    ),
    "2d": replace(
        _ALIGN,
        name="2d",
        description="text-to-motion and captions together, the caption loss on the caption tokens only",
        templates=("t2m.json", "m2t.json"),
        mask_prompt=True,
    ),
    "2e": replace(
        _ALIGN,
        name="2e",
        description="all four tasks on the plain prompts, the text loss on the caption tokens only",
        mask_prompt=True,
    ),
    "3": replace(
        _ALIGN,
        name="3",
        description="joint fine-tuning: every task incl. text-to-text; everything but the VAE trains",
        trains="all_but_vae",
        templates=("pretrain.json", "instructions.json", "text_to_text.json"),
        groups=(ParamGroup("all", _ALL, 1e-5),),
        warmup_fraction=0.02,
    ),
}


def get_stage(name: str) -> Stage:
    try:
        return STAGES[str(name)]
    except KeyError:
        raise ValueError(f"unknown stage {name!r} (known: {', '.join(STAGES)})") from None


def is_text_parameter(name: str) -> bool:
    """Upstream's rule: the GPT-2 tensors (`wte`, `wpe`) and every text-branch module (`fn.0`)."""
    return name in SHARED_GPT2 or ".fn.0." in name


def _keep_new_rows_hook(first_new_row: int):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[:first_new_row] = 0  # only <start_of_motion> / <end_of_motion> learn
        return grad

    return hook


def configure_trainable(model: nn.Module, stage: Stage, train_text: bool = False) -> list[RemovableHandle]:
    """Set `requires_grad` for the stage and return the gradient hooks installed (keep them to remove them).

    `motion`: VAE and text branch frozen, except `wte`, whose rows < 50257 get zero gradient (a hook), so only
    the SOM/EOM rows learn; `train_text` unfreezes the text branch (for presets without a pretrained GPT-2).
    `all_but_vae`: everything but the VAE. `vae`: the VAE only.
    """
    handles: list[RemovableHandle] = []
    for name, param in model.named_parameters():
        if stage.trains == "vae":
            trainable = name.startswith("vae.")
        elif name.startswith("vae.") or name in UNUSED:
            trainable = False
        elif stage.trains == "all_but_vae" or train_text:
            trainable = True
        elif stage.trains == "motion":
            trainable = name == TEXT_EMBEDDING or not is_text_parameter(name)
        else:
            raise ValueError(f"stage {stage.name}: unknown trains={stage.trains!r}")
        param.requires_grad_(trainable)
        if trainable and name == TEXT_EMBEDDING and stage.trains == "motion" and not train_text:
            handles.append(param.register_hook(_keep_new_rows_hook(SOM_ID)))
    return handles


def build_optimizer(model: nn.Module, stage: Stage, lr_scale: float = 1.0) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, one group per `stage.groups` entry (empty groups left out).

    Each group records `base_lr` (its peak lr); the trainer sets `lr = base_lr · stage.lr_factor(step)`.
    """
    members: dict[str, list[nn.Parameter]] = {g.name: [] for g in stage.groups}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        group = next((g for g in stage.groups if any(name.startswith(p) for p in g.prefixes)), None)
        if group is None:
            raise ValueError(f"stage {stage.name}: trainable parameter {name} is in no optimizer group")
        members[group.name].append(param)
    groups = [
        {"params": members[g.name], "lr": g.lr * lr_scale, "base_lr": g.lr * lr_scale, "name": g.name}
        for g in stage.groups
        if members[g.name]
    ]
    if not groups:
        raise ValueError(f"stage {stage.name}: nothing to train")
    # The fused kernel does the same update in one pass per tensor: on the demo model's CPU runs the per-tensor
    # loop spent ~25 % of a step on the 6.4 M-entry text embedding (sqrt, div, lerp each a separate sweep).
    trainable = [p for g in groups for p in g["params"]]
    fused = all(p.dtype == torch.float32 and p.device.type in ("cpu", "cuda") for p in trainable)
    return torch.optim.AdamW(groups, betas=stage.betas, weight_decay=stage.weight_decay, fused=fused)


def set_learning_rate(optimizer: torch.optim.Optimizer, stage: Stage, step: int, total_steps: int) -> float:
    """Apply the schedule for optimizer step `step`; returns the factor."""
    factor = stage.lr_factor(step, total_steps)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return factor
