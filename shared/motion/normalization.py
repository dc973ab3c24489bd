"""Feature normalisation with the HumanML3D Mean/Std (bundled) and a per-block z-score summary."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .humanml3d import FEATURE_DIM, LAYOUT, check_features

ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass(frozen=True)
class FeatureStats:
    """Per-dimension mean and std (263,) of the features a model was trained on."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value.shape != (FEATURE_DIM,) or not np.all(np.isfinite(value)):
                raise ValueError(f"{name}: expected {FEATURE_DIM} finite values, got shape {value.shape}")
        if np.any(self.std <= 0):
            raise ValueError("std: every entry must be > 0")

    def normalize(self, features: np.ndarray) -> np.ndarray:
        """z = (x - mean) / std."""
        return (np.asarray(features) - self.mean) / self.std

    def denormalize(self, z: np.ndarray) -> np.ndarray:
        """x = z * std + mean."""
        return np.asarray(z) * self.std + self.mean


@lru_cache(maxsize=1)
def humanml3d_stats() -> FeatureStats:
    """HumanML3D Mean/Std (identical to MotionGPT3's assets/meta mean/std), shipped with the package."""
    return FeatureStats(
        mean=np.load(ASSETS / "humanml3d_mean.npy").astype(np.float64),
        std=np.load(ASSETS / "humanml3d_std.npy").astype(np.float64),
    )


@dataclass(frozen=True)
class BlockSummary:
    """Mean and std of the z-scores of one feature block."""

    name: str
    z_mean: float
    z_std: float


def zscore_summary(features: np.ndarray, stats: FeatureStats | None = None) -> list[BlockSummary]:
    """Per-block z-score mean/std of (N, 263) features: the axis/unit/mirror sanity check of HUMANML3D.md 8."""
    z = (stats or humanml3d_stats()).normalize(check_features(features))
    return [BlockSummary(name, float(z[:, s].mean()), float(z[:, s].std())) for name, s in LAYOUT.blocks().items()]


def suspicious_blocks(summary: list[BlockSummary]) -> list[str]:
    """Human-readable warnings for the bug signatures of HUMANML3D.md section 9 item 11."""
    by_name = {b.name: b for b in summary}
    warnings = []
    if by_name["root_height"].z_mean > 5:
        warnings.append(f"root height z-mean {by_name['root_height'].z_mean:+.1f} > 5: wrong up axis or units?")
    if by_name["ric"].z_std > 5:
        warnings.append(f"joint position z-std {by_name['ric'].z_std:.1f} > 5: wrong up axis or units?")
    return warnings
