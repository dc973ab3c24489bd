"""Opt-in dynamic int8 quantisation of the layers that dominate CPU latency at batch 1 (changes outputs)."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from .motiongpt3 import MotionGPT3

QUANTIZABLE_PARTS = ("diffusion", "backbone")


def _int8(layer: nn.Linear | Conv1D) -> nn.Module:
    """A dynamically quantised int8 copy of a Linear or of a transformers Conv1D (y = x @ W + b, W [in, out])."""
    if isinstance(layer, Conv1D):
        linear = nn.Linear(*layer.weight.shape)
        with torch.no_grad():
            linear.weight.copy_(layer.weight.t())
            linear.bias.copy_(layer.bias)
        layer = linear
    with warnings.catch_warnings():  # torch.ao's eager quantisation is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
        from torch.ao.quantization import default_dynamic_qconfig

        layer.qconfig = default_dynamic_qconfig
        return DynamicInt8Linear.from_float(layer)


def quantize_int8(model: MotionGPT3, parts: tuple[str, ...] = QUANTIZABLE_PARTS) -> MotionGPT3:
    """Replace, in place, the weight-bound linear layers of `parts` by dynamically quantised int8 ones (int8
    weights per tensor, activations quantised per call) and return the model.

    "diffusion": the layers the sampling loop runs at every step (input projection, residual MLPs, output
    projection); the step-invariant ones (condition encoder, timestep and AdaLN layers, run once per chain as
    wide matmuls) stay fp32. "backbone": every per-branch projection and MLP of the MoT GPT-2 (embeddings, norms
    and the attention itself stay fp32). A quarter of the weight traffic, which is what batch-1 CPU inference
    waits on; outputs move (bench `--int8` reports by how much), so this is never on by default. CPU only; the
    model's state dict no longer matches the checkpoint's.
    """
    if model.device.type != "cpu":
        raise ValueError("int8 dynamic quantisation runs on the CPU only")
    if unknown := sorted(set(parts) - set(QUANTIZABLE_PARTS)):
        raise ValueError(f"quantize_int8: unknown part {unknown[0]!r} (choose from {QUANTIZABLE_PARTS})")
    if "diffusion" in parts:
        net = model.diffloss.net
        net.input_proj = _int8(net.input_proj)
        net.final_layer.linear = _int8(net.final_layer.linear)
        for block in net.res_blocks:
            block.mlp[0], block.mlp[2] = _int8(block.mlp[0]), _int8(block.mlp[2])
    if "backbone" in parts:
        for block in model.lm.transformer.h:
            for branch in range(2):
                block.c_attn.fn[branch] = _int8(block.c_attn.fn[branch])
                block.c_proj.fn[branch] = _int8(block.c_proj.fn[branch])
                mlp = block.mlp.fn[branch]
                mlp.c_fc, mlp.c_proj = _int8(mlp.c_fc), _int8(mlp.c_proj)
    return model
