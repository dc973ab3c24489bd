"""How many torch intra-op threads to use on the CPU: one on machines with two cores or fewer, else torch's default."""

from __future__ import annotations

import os

# Measured with `motiongpt3 bench model --preset demo` on a 2-core VM (AVX2): one thread 31 ms end to end against
# 39 ms with two on an otherwise idle machine, and two threads ran ~10x slower per diffusion step than one while
# other work (Blender, a second job) used the other core. Small matmuls gain little from a second thread.
SMALL_MACHINE_CORES = 2


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, e.g. inside a container)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads(cores: int, torch_default: int) -> int:
    """The thread count when none is asked for: 1 on small machines (≤ 2 cores), else torch's own default."""
    return 1 if cores <= SMALL_MACHINE_CORES else torch_default


def configure_threads(requested: int = 0) -> int:
    """Set torch's intra-op threads to `requested` (> 0) or the default above; returns the count in use."""
    import torch

    if requested < 0:
        raise ValueError(f"threads: must be 0 (automatic) or a positive count, got {requested}")
    threads = requested or default_threads(available_cores(), torch.get_num_threads())
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads
