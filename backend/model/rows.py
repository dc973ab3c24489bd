"""Row counts that keep a request's numbers independent of what is batched with it on the CPU.

MKL's float32 GEMM (torch's CPU matmul) computes an output row with the same instructions whatever the other rows
are, except in its small-matrix paths: a call with fewer than 4 rows, or a thread's share of rows that is not a
multiple of 4, rounds differently (measured on AVX2 with 1 and 2 threads: every row count that is a multiple of 4,
up to 4096, gives bit-identical rows; 1-3 rows, and 5-11 with two threads, do not). Padding the few small-row
matmuls of a batch (the diffusion chain, the VAE's cross-attention) to a multiple of 4 rows makes a request's
motion bit-identical alone or in any batch, for the price of at most 3 extra rows in tiny matmuls.
"""

from __future__ import annotations

import torch

ROW_MULTIPLE = 4


def stable_rows(rows: int, device: torch.device | str, multiple: int = ROW_MULTIPLE) -> int:
    """`rows` rounded up to a multiple of `multiple` on the CPU (GPUs pick kernels by shape anyway: unchanged)."""
    if torch.device(device).type != "cpu":
        return rows
    return -(-rows // multiple) * multiple


def pad_rows(tensor: torch.Tensor, rows: int, dim: int = 0) -> torch.Tensor:
    """`tensor` with copies of its first row appended along `dim` up to `rows` (no copy when already there)."""
    extra = rows - tensor.shape[dim]
    if extra <= 0:
        return tensor
    first = tensor.narrow(dim, 0, 1)
    shape = list(tensor.shape)
    shape[dim] = extra
    return torch.cat([tensor, first.expand(shape)], dim=dim)
