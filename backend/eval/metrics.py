"""Text-to-motion metrics on embeddings (FID, R-precision, MM-Dist, Diversity, MultiModality) and joint errors.

Definitions follow HUMANML3D.md §7.2 (Guo et al. / MDM `eval_humanml.py`): all distances are Euclidean on the raw
embeddings; randomness comes only from the `rng` argument (a `numpy.random.Generator`).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

R_PRECISION_GROUP = 32  # "batch size must be 32" (MDM eval_humanml.py)
DIVERSITY_TIMES = 300
MULTIMODALITY_TIMES = 10


def _embeddings(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: expected finite [N, D] embeddings, got shape {x.shape}")
    return x


def gaussian_moments(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of [N, D] embeddings (unbiased, np.cov(rowvar=False) as upstream)."""
    emb = _embeddings(emb, "emb")
    if len(emb) < 2:
        raise ValueError("emb: a covariance needs at least 2 embeddings")
    return emb.mean(axis=0), np.atleast_2d(np.cov(emb, rowvar=False))


def frechet_distance(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray, eps: float = 1e-6):
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½) between two Gaussians (real part of scipy's sqrtm).

    If the product is singular enough for sqrtm to return non-finite values, `eps`·I is added to both
    covariances first (the pytorch-fid / MDM fallback).
    """
    mu_a, mu_b = np.atleast_1d(mu_a).astype(np.float64), np.atleast_1d(mu_b).astype(np.float64)
    cov_a, cov_b = np.atleast_2d(cov_a).astype(np.float64), np.atleast_2d(cov_b).astype(np.float64)
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (len(mu_a), len(mu_a)):
        raise ValueError(f"moment shapes differ: {mu_a.shape}, {cov_a.shape} vs {mu_b.shape}, {cov_b.shape}")
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(len(mu_a)) * eps
        covmean = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(np.real(covmean)))


def fid(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets [Na, D] and [Nb, D]."""
    return frechet_distance(*gaussian_moments(emb_a), *gaussian_moments(emb_b))


def euclidean_distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[Na, D], [Nb, D] -> [Na, Nb] Euclidean distances (clipped at 0 before the square root)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    squared = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]
    return np.sqrt(np.maximum(squared, 0.0))


def _paired(text_emb: np.ndarray, motion_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    text_emb, motion_emb = _embeddings(text_emb, "text_emb"), _embeddings(motion_emb, "motion_emb")
    if text_emb.shape != motion_emb.shape:
        raise ValueError(f"text and motion embeddings must pair up: {text_emb.shape} vs {motion_emb.shape}")
    return text_emb, motion_emb


def _groups(count: int, group_size: int, rng: np.random.Generator | None) -> np.ndarray:
    """Indices of the full groups [G, group_size] of (shuffled, when rng is given) pairs; the rest is dropped."""
    if count < group_size:
        raise ValueError(f"R-precision needs at least {group_size} pairs, got {count}")
    order = np.arange(count) if rng is None else rng.permutation(count)
    full = count // group_size
    return order[: full * group_size].reshape(full, group_size)


def r_precision(
    text_emb: np.ndarray,
    motion_emb: np.ndarray,
    top_k: int = 3,
    group_size: int = R_PRECISION_GROUP,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """R-precision top-1..top_k (array of top_k fractions) of paired [N, D] embeddings.

    The pairs (shuffled with `rng`; in input order when rng is None) are cut into groups of `group_size`;
    in each group text i scores at k when motion i is among its k nearest motions. Averaged over the pairs
    of the full groups (the remainder is dropped, as upstream).
    """
    text_emb, motion_emb = _paired(text_emb, motion_emb)
    hits = np.zeros(top_k)
    groups = _groups(len(text_emb), group_size, rng)
    for index in groups:
        distances = euclidean_distance_matrix(text_emb[index], motion_emb[index])
        rank = np.argsort(distances, axis=1, kind="stable")  # nearest first
        position = np.argmax(rank == np.arange(group_size)[:, None], axis=1)  # where each text's own motion lands
        hits += (position[:, None] < np.arange(1, top_k + 1)[None, :]).sum(0)
    return hits / groups.size


def matching_score(
    text_emb: np.ndarray,
    motion_emb: np.ndarray,
    group_size: int = R_PRECISION_GROUP,
    rng: np.random.Generator | None = None,
) -> float:
    """MM-Dist: mean distance between each text and its own motion over the same full groups as r_precision
    (pass an rng seeded like r_precision's to use the same pairs; group_size=1 uses every pair)."""
    text_emb, motion_emb = _paired(text_emb, motion_emb)
    index = _groups(len(text_emb), group_size, rng).ravel()
    return float(np.linalg.norm(text_emb[index] - motion_emb[index], axis=1).mean())


def diversity(emb: np.ndarray, times: int = DIVERSITY_TIMES, rng: np.random.Generator | None = None) -> float:
    """Mean distance over `times` pairs: two index draws of size `times`, each without replacement."""
    emb = _embeddings(emb, "emb")
    if len(emb) < times:
        raise ValueError(f"diversity: needs at least {times} embeddings, got {len(emb)}")
    rng = np.random.default_rng() if rng is None else rng
    first = rng.choice(len(emb), times, replace=False)
    second = rng.choice(len(emb), times, replace=False)
    return float(np.linalg.norm(emb[first] - emb[second], axis=1).mean())


def multimodality(emb: np.ndarray, times: int = MULTIMODALITY_TIMES, rng: np.random.Generator | None = None) -> float:
    """[N_texts, n_repeats, D] embeddings of several generations per text -> mean distance over `times` pairs
    of generations of the same text (one pair of index draws shared by all texts, as MDM)."""
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 3 or not np.all(np.isfinite(emb)):
        raise ValueError(f"emb: expected finite [N_texts, n_repeats, D], got shape {emb.shape}")
    if emb.shape[1] < times:
        raise ValueError(f"multimodality: needs at least {times} repeats per text, got {emb.shape[1]}")
    rng = np.random.default_rng() if rng is None else rng
    first = rng.choice(emb.shape[1], times, replace=False)
    second = rng.choice(emb.shape[1], times, replace=False)
    return float(np.linalg.norm(emb[:, first] - emb[:, second], axis=2).mean())


def ade_fde(pred_joints: np.ndarray, gt_joints: np.ndarray, frames_slice: slice) -> tuple[np.ndarray, np.ndarray]:
    """Average / final displacement error (metres) over the frames in `frames_slice`.

    Joints [..., T, J, 3]; ADE = mean over the sliced frames and the joints of the per-joint L2 error, FDE = the
    same at the slice's last frame. Returns two arrays of the batch shape (0-d for a single clip).
    """
    pred, gt = np.asarray(pred_joints, dtype=np.float64), np.asarray(gt_joints, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim < 3 or pred.shape[-1] != 3:
        raise ValueError(f"joints must be [..., T, J, 3] of equal shape, got {pred.shape} and {gt.shape}")
    error = np.linalg.norm(pred[..., frames_slice, :, :] - gt[..., frames_slice, :, :], axis=-1)  # [..., t, J]
    if error.shape[-2] == 0:
        raise ValueError(f"frames_slice {frames_slice} selects no frame of {pred.shape[-3]}")
    return error.mean(axis=(-2, -1)), error[..., -1, :].mean(axis=-1)


def prediction_frames(length: int) -> slice:
    """The predicted segment of a `length`-frame clip in the motion-prediction protocol: frames ≥ ⌊0.2 L⌋."""
    return slice(int(0.2 * length), length)


def inbetween_frames(length: int) -> slice:
    """The generated middle in the in-betweening protocol: [⌊0.25 L⌋, L − ⌊0.25 L⌋)."""
    quarter = int(0.25 * length)
    return slice(quarter, length - quarter)


def renorm_for_t2m_eval(
    z: np.ndarray, mean: np.ndarray, std: np.ndarray, mean_eval: np.ndarray, std_eval: np.ndarray
) -> np.ndarray:
    """Model-normalised features -> evaluator-normalised: (z·std + mean − mean_eval) / std_eval (MDM renorm4t2m)."""
    return (np.asarray(z) * std + mean - mean_eval) / std_eval


def mean_and_interval(values: np.ndarray) -> tuple[float, float]:
    """Replications -> (mean, 1.96·std/√n), the 95 % interval reported by MDM / MotionGPT3 (population std)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"values: expected a non-empty 1-D array, got shape {values.shape}")
    return float(values.mean()), float(1.96 * values.std() / np.sqrt(len(values)))
