"""GPU checks: the same request on CUDA (bf16/fp16 autocast) and on the CPU agree; skipped without CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.model.config import tiny_config
from backend.model.loading import build_model, resolve_device
from backend.tasks.inference import motion_to_text, text_to_motion

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_auto_device_picks_what_is_present():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@needs_cuda
def test_cuda_generation_matches_cpu(cmu_walk):
    torch.manual_seed(0)
    cpu = build_model(tiny_config(), None, "random")
    gpu = build_model(tiny_config(), None, "random").to("cuda")
    gpu.load_state_dict(cpu.state_dict())
    a = text_to_motion(cpu, ["walk"], frames=40, seed=3, steps=10)[0][0]
    b = text_to_motion(gpu, ["walk"], frames=40, seed=3, steps=10)[0][0]
    assert b.shape == a.shape and np.all(np.isfinite(b))
    scale = np.abs(a).max()
    assert np.abs(a - b).max() < 0.05 * scale  # bf16 autocast on the GPU, fp32 on the CPU
    assert motion_to_text(gpu, [cmu_walk[0][:60]], max_new_tokens=5)  # decodes without dtype errors
