"""`motiongpt3 bench motion`: median timings of the motion core (encode, decode, IK) against its 5 ms goal."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from shared.motion.humanml3d import features_to_joints, joints_to_features
from shared.motion.ik import solve_local_rotations
from shared.motion.skeleton import REFERENCE_POSE_000021

GOAL_MS = 5.0


def median_ms(function: Callable[[], object], repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def benchmark_motion(frames: int = 196, repeats: int = 200) -> dict[str, float]:
    """Median milliseconds of encode (frames+1 joints -> frames rows), decode and IK of `frames` frames."""
    rng = np.random.default_rng(0)
    t = np.arange(frames + 1)[:, None, None] / 20.0
    # A moving, articulated motion: the reference pose walking forward with a wobble on every joint.
    joints = REFERENCE_POSE_000021[None] + 0.05 * np.sin(t * rng.uniform(1, 6, (1, 22, 3)))
    joints[..., 2] += 1.2 * t[..., 0]
    features = joints_to_features(joints)
    decoded = features_to_joints(features)
    return {
        "encode": median_ms(lambda: joints_to_features(joints), repeats),
        "decode": median_ms(lambda: features_to_joints(features), repeats),
        "ik": median_ms(lambda: solve_local_rotations(decoded), repeats),
    }


def run_motion_benchmark(frames: int = 196, repeats: int = 200) -> None:
    """Print the motion benchmark as a table with the ratio to the 5 ms goal."""
    results = benchmark_motion(frames, repeats)
    print(f"motion core, {frames} frames, median of {repeats} runs (goal <= {GOAL_MS:g} ms each)")
    for name, ms in results.items():
        print(f"  {name:<7} {ms:7.3f} ms   {ms / GOAL_MS:5.2f} x goal")
