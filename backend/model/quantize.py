"""Opt-in dynamic int8 quantisation of the diffusion head's per-step linear layers, for CPUs (changes outputs)."""

from __future__ import annotations

import warnings

from torch import nn

from .motiongpt3 import MotionGPT3


def quantize_diffusion_int8(model: MotionGPT3) -> MotionGPT3:
    """Replace, in place, the linear layers the diffusion loop runs at every step (input projection, residual
    MLPs, output projection) by dynamically quantised int8 ones (weights int8 per tensor, activations quantised
    per call), and return the model.

    Four times less weight traffic per step; the step-invariant parts (condition encoder, timestep and AdaLN
    layers, computed once per chain as wide matmuls) stay fp32. Outputs move (bench `--int8` reports by how much),
    so this is never on by default. CPU only; the model's state dict no longer matches the checkpoint's.
    """
    if model.device.type != "cpu":
        raise ValueError("int8 dynamic quantisation runs on the CPU only")
    net = model.diffloss.net
    with warnings.catch_warnings():  # torch.ao's eager quantisation is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
        from torch.ao.quantization import default_dynamic_qconfig

        def convert(layer: nn.Module) -> nn.Module:
            if not isinstance(layer, nn.Linear):
                return layer
            layer.qconfig = default_dynamic_qconfig
            return DynamicInt8Linear.from_float(layer)

        net.input_proj = convert(net.input_proj)
        net.final_layer.linear = convert(net.final_layer.linear)
        for block in net.res_blocks:
            block.mlp = nn.Sequential(*(convert(layer) for layer in block.mlp))
    return model
