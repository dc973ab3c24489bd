"""Evaluation package: metric oracles computed by hand or in closed form, the T2M evaluator's plumbing with random
weights, the contrastive evaluator on a toy paired set, and the `motiongpt3 eval` protocol on a fake model."""

from __future__ import annotations

import argparse
import json
import math
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from backend.eval import caption_metrics as cm
from backend.eval.contrastive import ContrastiveConfig, load_contrastive, save_contrastive, train_contrastive
from backend.eval.evaluate import EvalOptions, add_eval_command, evaluate, load_humanml3d_items, parse_caption_line
from backend.eval.metrics import (
    ade_fde,
    diversity,
    fid,
    frechet_distance,
    inbetween_frames,
    matching_score,
    mean_and_interval,
    multimodality,
    prediction_frames,
    r_precision,
    renorm_for_t2m_eval,
)
from backend.eval.t2m_evaluator import (
    GloveVectorizer,
    T2MEmbedder,
    T2MEvaluator,
    load_eval_stats,
    load_t2m_embedder,
    pad_clips,
)


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root by eigendecomposition (independent of scipy.linalg.sqrtm)."""
    w, v = np.linalg.eigh(matrix)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def closed_form_frechet(mu1, s1, mu2, s2) -> float:
    """‖Δμ‖² + Tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½): the symmetric form, no product square root."""
    root = psd_sqrt(s1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * psd_sqrt(root @ s2 @ root)))


@pytest.fixture(scope="module")
def two_gaussians():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    return np.zeros(4), a @ a.T / 4 + 0.5 * np.eye(4), np.array([1.0, -0.5, 0.25, 0.0]), b @ b.T / 4 + 0.5 * np.eye(4)


# --- FID ------------------------------------------------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero():
    emb = np.random.default_rng(1).standard_normal((500, 16))
    assert abs(fid(emb, emb)) < 1e-6


def test_frechet_distance_equals_the_closed_form_on_exact_moments(two_gaussians):
    mu1, s1, mu2, s2 = two_gaussians
    np.testing.assert_allclose(frechet_distance(mu1, s1, mu2, s2), closed_form_frechet(mu1, s1, mu2, s2), rtol=1e-10)
    # Diagonal covariances: Tr(Σ1 + Σ2 − 2√(Σ1Σ2)) = Σ_i (√a_i − √b_i)²; 1-D: Δμ² + (σ1 − σ2)².
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    assert frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b)) == pytest.approx(3 + 1 + 1 + 0)
    assert frechet_distance([2.0], [[9.0]], [0.0], [[1.0]]) == pytest.approx(4 + (3 - 1) ** 2)


def test_fid_of_two_sampled_gaussians_matches_the_closed_form(two_gaussians):
    mu1, s1, mu2, s2 = two_gaussians
    n = 20000
    rng = np.random.default_rng(2)
    x, y = rng.multivariate_normal(mu1, s1, n), rng.multivariate_normal(mu2, s2, n)
    # The sampling error is dominated by the mean term: sd(‖x̄ − ȳ‖²) ≈ 2 √(Δμᵀ(Σ1 + Σ2)Δμ / n) ≈ 0.019 here.
    dmu = mu1 - mu2
    sd = 2 * np.sqrt(dmu @ (s1 + s2) @ dmu / n)
    assert abs(fid(x, y) - closed_form_frechet(mu1, s1, mu2, s2)) < 5 * sd


# --- R-precision, MM-Dist -------------------------------------------------------------------------------------------


def test_r_precision_of_matched_embeddings_is_one():
    emb = np.random.default_rng(3).standard_normal((96, 16))
    np.testing.assert_array_equal(r_precision(emb, emb, rng=np.random.default_rng(0)), [1.0, 1.0, 1.0])
    assert matching_score(emb, emb, rng=np.random.default_rng(0)) == pytest.approx(0.0, abs=1e-7)


def test_r_precision_of_random_embeddings_is_k_over_32():
    rng = np.random.default_rng(4)
    text, motion = rng.standard_normal((32 * 300, 8)), rng.standard_normal((32 * 300, 8))
    # Per pair a Bernoulli(k/32): sd ≈ √(p(1−p)/9600) ≤ 0.0048 for k ≤ 3.
    np.testing.assert_allclose(r_precision(text, motion, rng=rng), np.array([1, 2, 3]) / 32, atol=0.015)


def test_r_precision_and_mm_dist_hand_case():
    # 1-D texts at 0, 10, 20, 30 and motions at 6, 4, 27, 15 (one group of 4, input order):
    #   t0: distances 6 4 27 15 -> own (6) is 2nd     t1: 4 6 17 5 -> own (6) is 3rd
    #   t2: 14 16 7 5 -> own (7) is 2nd               t3: 24 26 3 15 -> own (15) is 2nd
    # top-1 = 0/4, top-2 = 3/4, top-3 = 4/4; MM-Dist = (6 + 6 + 7 + 15) / 4 = 8.5
    text = np.array([[0.0], [10.0], [20.0], [30.0]])
    motion = np.array([[6.0], [4.0], [27.0], [15.0]])
    np.testing.assert_allclose(r_precision(text, motion, top_k=3, group_size=4), [0.0, 0.75, 1.0])
    assert matching_score(text, motion, group_size=4) == pytest.approx(8.5)
    # A remainder smaller than a group is dropped: a 5th pair changes nothing.
    text5, motion5 = np.vstack([text, [[100.0]]]), np.vstack([motion, [[0.0]]])
    np.testing.assert_allclose(r_precision(text5, motion5, top_k=3, group_size=4), [0.0, 0.75, 1.0])


class ScriptedRng:
    """Stands in for a numpy Generator: `choice` returns pre-set index draws (and checks replace=False)."""

    def __init__(self, *draws):
        self.draws = [np.array(d) for d in draws]

    def choice(self, n, size, replace=True):
        assert replace is False
        draw = self.draws.pop(0)
        assert len(draw) == size and draw.max() < n
        return draw


def test_diversity_hand_case():
    # A 3-4-5 right triangle, pairs (A,B), (B,C), (C,A): (3 + 5 + 4) / 3 = 4.
    points = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    assert diversity(points, times=3, rng=ScriptedRng([0, 1, 2], [1, 2, 0])) == pytest.approx(4.0)


def test_diversity_of_a_regular_simplex():
    # One-hot points: distinct pairs are √2 apart; with two random permutations of N = times indices the
    # expected number of coinciding positions is 1, so E[diversity] = √2 (1 − 1/N).
    n = 300
    values = [diversity(np.eye(n), times=n, rng=np.random.default_rng(s)) for s in range(200)]
    assert np.mean(values) == pytest.approx(math.sqrt(2) * (1 - 1 / n), abs=5e-4)
    assert diversity(np.ones((n, 4)), times=n, rng=np.random.default_rng(0)) == 0.0


def test_multimodality_hand_case():
    # Draws first = [0, 1], second = [1, 2] shared by all texts.
    # text 0 repeats (0,0), (3,0), (3,4): |r0 − r1| = 3, |r1 − r2| = 4
    # text 1 repeats (0,0), (0,0), (6,8): 0 and 10  -> mean (3 + 4 + 0 + 10) / 4 = 4.25
    emb = np.array([[[0, 0], [3, 0], [3, 4]], [[0, 0], [0, 0], [6, 8]]], dtype=float)
    assert multimodality(emb, times=2, rng=ScriptedRng([0, 1], [1, 2])) == pytest.approx(4.25)


def test_mean_and_interval():
    # values 1, 2, 3: mean 2, population std √(2/3); 1.96·√(2/3)/√3
    mean, interval = mean_and_interval(np.array([1.0, 2.0, 3.0]))
    assert (mean, interval) == pytest.approx((2.0, 1.96 * math.sqrt(2 / 3) / math.sqrt(3)))


# --- joints ---------------------------------------------------------------------------------------------------------


def test_ade_fde_hand_case():
    # Joint 0 is off by (3t, 4t, 0) -> 5t m; joint 1 by (0, 0, t) -> t m. Frames 1..3:
    # ADE = (5 + 10 + 15 + 1 + 2 + 3) / 6 = 6, FDE = (15 + 3) / 2 = 9; a perfect second sample gives 0, 0.
    t = np.arange(4.0)
    gt = np.zeros((4, 2, 3))
    pred = gt.copy()
    pred[:, 0] = np.stack([3 * t, 4 * t, 0 * t], -1)
    pred[:, 1, 2] = t
    ade, fde = ade_fde(pred, gt, slice(1, 4))
    assert (float(ade), float(fde)) == pytest.approx((6.0, 9.0))
    ade, fde = ade_fde(np.stack([pred, gt]), np.stack([gt, gt]), slice(1, 4))
    np.testing.assert_allclose(ade, [6.0, 0.0])
    np.testing.assert_allclose(fde, [9.0, 0.0])
    assert prediction_frames(10) == slice(2, 10)
    assert inbetween_frames(10) == slice(2, 8)
    assert inbetween_frames(199) == slice(49, 150)


def test_renorm_for_t2m_eval_and_bundled_stats():
    mean_eval, std_eval = load_eval_stats()
    assert mean_eval.shape == std_eval.shape == (263,)
    # HUMANML3D.md §8: std_eval is constant per block, 0.122555 for ric and 0.014095 for the contacts.
    assert std_eval[4] == pytest.approx(0.122555, abs=1e-6)
    assert std_eval[259:] == pytest.approx([0.014095] * 4, abs=1e-6)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 263))
    mean, std = rng.standard_normal(263), rng.uniform(0.5, 2.0, 263)
    z = (x - mean) / std
    np.testing.assert_allclose(renorm_for_t2m_eval(z, mean, std, mean_eval, std_eval), (x - mean_eval) / std_eval)


# --- caption metrics ------------------------------------------------------------------------------------------------

HYP = "The cat sat on the mat."
REF_7 = "the cat sat on the red mat"
REF_4 = "a cat sits down"


def test_bleu_hand_case_with_brevity_penalty():
    # hyp (6 words): the cat sat on the mat      ref (7): the cat sat on the red mat
    # clipped matches / hyp n-grams: 1-grams 6/6; 2-grams {the cat, cat sat, sat on, on the} 4/5;
    # 3-grams {the cat sat, cat sat on, sat on the} 3/4; 4-grams {the cat sat on, cat sat on the} 2/3.
    # geometric mean (1 · 4/5 · 3/4 · 2/3)^(1/4) = 0.4^(1/4); brevity c=6 < r=7: exp(1 − 7/6) = exp(−1/6).
    assert cm.bleu([HYP], [[REF_7]], max_order=4) == pytest.approx(0.4**0.25 * math.exp(-1 / 6), rel=1e-12)
    assert cm.bleu([HYP], [[REF_7]], max_order=1) == pytest.approx(math.exp(-1 / 6), rel=1e-12)
    # A second, 4-word reference adds no matches, but r is the SHORTEST reference (tensorflow/nmt): 4 < 6, BP = 1.
    assert cm.bleu([HYP], [[REF_7, REF_4]], max_order=4) == pytest.approx(0.4**0.25, rel=1e-12)
    # No 4-gram match -> 0 (no smoothing).
    assert cm.bleu(["the cat sat down"], [[REF_7]], max_order=4) == 0.0


def test_bleu_is_corpus_level():
    # 1-gram matches pooled over the corpus: (2 + 1) / (2 + 4) = 1/2; c = 6, r = 2 + 6 = 8 -> exp(1 − 8/6).
    predictions = ["a b", "c d e f"]
    references = [["a b"], ["c x y z w v"]]
    assert cm.bleu(predictions, references, max_order=1) == pytest.approx(0.5 * math.exp(-1 / 3), rel=1e-12)


def test_rouge_l_hand_case():
    # hyp (5): the man quickly walks forward    ref (7): a man walks forward slowly and stops
    # LCS = "man walks forward" = 3 -> P = 3/5, R = 3/7, F = 2PR/(P+R) = (18/35)/(36/35) = 1/2.
    assert cm.lcs_length("a b c d".split(), "b x d".split()) == 2
    hyp = "The man, quickly walks forward."
    assert cm.rouge_l_pair(hyp, "a man walks forward slowly and stops") == pytest.approx(0.5)
    # Best reference per prediction (identical -> 1), then the mean over predictions: (1 + 1/2) / 2.
    predictions = [hyp, hyp]
    references = [
        ["a man walks forward slowly and stops", "the man quickly walks forward"],
        ["a man walks forward slowly and stops"],
    ]
    assert cm.rouge_l(predictions, references) == pytest.approx(0.75)


def test_cider_d_hand_case():
    # Corpus of 2 clips: log N = ln 2 = L. Document frequencies come from the references only: every reference
    # n-gram has df 1 and idf L − ln 1 = L; hypothesis n-grams absent from all references use df = max(1, 0) -> L.
    # Clip A: hyp "a b", ref "a b": cosine 1 for n = 1, 2; no 3-, 4-grams (zero norm -> 0); equal lengths.
    #   CIDEr_A = 10 · (1 + 1 + 0 + 0) / 4 = 5
    # Clip B: hyp "c d", ref "c e": n = 1 dot = min(L, L)·L for "c" only, norms √2 L each -> 1/2; n = 2 no match.
    #   CIDEr_B = 10 · (1/2) / 4 = 1.25          corpus = (5 + 1.25) / 2 = 3.125
    assert cm.cider_d(["a b", "c d"], [["a b"], ["c e"]]) == pytest.approx(3.125)


def test_cider_d_clipping_and_length_penalty():
    # Clip A: hyp "a a b" vs ref "a b" (weights in units of L = ln 2):
    #   n=1: hyp {a: 2, b: 1} (norm √5), ref {a: 1, b: 1} (norm √2); clipped dot min(2,1)·1 + 1·1 = 2 -> 2/√10
    #   n=2: hyp {"a a": 1, "a b": 1} (norm √2), ref {"a b": 1} (norm 1); dot 1 -> 1/√2
    #   n=3: the reference has no 3-gram -> 0.  Lengths (bigram counts) 2 vs 1: penalty exp(−1/(2·6²)).
    # Clip B as in the hand case above: 1.25.
    cider_a = 10 * (2 / math.sqrt(10) + 1 / math.sqrt(2)) * math.exp(-1 / 72) / 4
    assert cm.cider_d(["a a b", "c d"], [["a b"], ["c e"]]) == pytest.approx((cider_a + 1.25) / 2)
    # Two references are averaged: clip A with refs "a b" (score 5 · ... as above) and "x y" (0).
    assert cm.cider_d(["a b", "c d"], [["a b", "x y"], ["c e"]]) < 3.125
    assert cm.cider_d(["a b"], [["a b"]]) == 0.0  # one clip: every idf is log 1 − log 1 = 0


def test_caption_scores_keys_and_bertscore_never_downloads(monkeypatch):
    scores = cm.caption_scores([HYP], [[REF_7]])
    assert set(scores) == {"bleu_1", "bleu_4", "rouge_l", "cider"}
    value, why = cm.bertscore_f1([HYP], [[REF_7]], model_type="no-such-model-for-tests")
    assert value is None and "skipped" in why


# --- T2M evaluator --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def t2m_evaluator() -> T2MEvaluator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return T2MEvaluator()


def _embedder(evaluator, vectorizer=None) -> T2MEmbedder:
    return T2MEmbedder(evaluator, vectorizer, np.zeros(263), np.ones(263))


def test_t2m_state_dict_layout_matches_the_published_checkpoint(t2m_evaluator):
    # HUMANML3D.md §7.1 sizes: movement Conv1d 259->512->512 (k=4) + Linear; text BiGRU(512), pos Linear(15->300),
    # learned initial state (2, 1, 512); motion BiGRU(1024) on 512-d movement codes; both heads end at 512.
    shapes = {k: tuple(v.shape) for k, v in t2m_evaluator.state_dict().items()}
    assert shapes["movement_encoder.main.0.weight"] == (512, 259, 4)
    assert shapes["movement_encoder.main.3.weight"] == (512, 512, 4)
    assert shapes["movement_encoder.out_net.weight"] == (512, 512)
    assert shapes["text_encoder.pos_emb.weight"] == (300, 15)
    assert shapes["text_encoder.input_emb.weight"] == (512, 300)
    assert shapes["text_encoder.gru.weight_ih_l0_reverse"] == (3 * 512, 512)
    assert shapes["text_encoder.hidden"] == (2, 1, 512)
    assert shapes["text_encoder.output_net.1.weight"] == (512,)  # LayerNorm
    assert shapes["text_encoder.output_net.3.weight"] == (512, 512)
    assert shapes["motion_encoder.input_emb.weight"] == (1024, 512)
    assert shapes["motion_encoder.hidden"] == (2, 1, 1024)
    assert shapes["motion_encoder.output_net.3.weight"] == (512, 1024)


def test_t2m_motion_embeddings_follow_the_input_order(t2m_evaluator):
    rng = np.random.default_rng(6)
    clips = [rng.standard_normal((n, 263)).astype(np.float32) for n in (40, 196, 80, 124, 60)]
    embedder = _embedder(t2m_evaluator)
    batch = embedder.embed_motions(clips)
    assert batch.shape == (5, 512)
    alone = np.concatenate([embedder.embed_motions([c]) for c in clips])
    np.testing.assert_allclose(batch, alone, atol=1e-5)
    order = [3, 0, 4, 1, 2]
    np.testing.assert_allclose(embedder.embed_motions([clips[i] for i in order]), batch[order], atol=1e-5)
    np.testing.assert_array_equal(embedder.embed_motions(clips), batch)  # deterministic


def test_t2m_motion_embeddings_equal_the_original_sorted_wrapper(t2m_evaluator):
    # Upstream: sort by length (descending), pack_padded_sequence(m_lens // 4) with sorted lengths, and return the
    # rows in that sorted order. Undoing that permutation must give our input-order rows.
    rng = np.random.default_rng(7)
    clips = [rng.standard_normal((n, 263)).astype(np.float32) for n in (48, 196, 100, 72)]
    batch, lengths = pad_clips(clips, 196)
    align = np.argsort(lengths)[::-1].copy()
    motions = torch.from_numpy(batch[align])
    m_lens = torch.from_numpy(lengths[align]) // 4
    encoder = t2m_evaluator.motion_encoder
    with torch.no_grad():
        movements = t2m_evaluator.movement_encoder(motions[..., :-4])
        packed = pack_padded_sequence(encoder.input_emb(movements), m_lens.tolist(), batch_first=True)
        _, last = encoder.gru(packed, encoder.hidden.repeat(1, len(clips), 1))
        sorted_rows = encoder.output_net(torch.cat([last[0], last[1]], -1)).numpy()
    ours = _embedder(t2m_evaluator).embed_motions(clips)
    np.testing.assert_allclose(ours[align], sorted_rows, atol=1e-5)


def test_t2m_padding_beyond_the_receptive_field_is_ignored(t2m_evaluator):
    # Packing by m_lens // 4: the last GRU step reads input frames up to L + 2 through the two stride-2 convs.
    clip = np.random.default_rng(8).standard_normal((64, 263)).astype(np.float32)
    batch, lengths = pad_clips([clip], 196)
    garbage = batch.copy()
    garbage[0, 64 + 4 :] = 50.0
    with torch.no_grad():
        a = t2m_evaluator.embed_motion_batch(torch.from_numpy(batch), torch.from_numpy(lengths))
        b = t2m_evaluator.embed_motion_batch(torch.from_numpy(garbage), torch.from_numpy(lengths))
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


@pytest.fixture()
def glove_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "glove"
    folder.mkdir()
    words = ["unk", "sos", "eos", "a", "man", "walk", "left", "slowly"]
    vectors = np.random.default_rng(9).standard_normal((len(words), 300)).astype(np.float32)
    np.save(folder / "our_vab_data.npy", vectors)
    (folder / "our_vab_words.pkl").write_bytes(pickle.dumps(words))
    (folder / "our_vab_idx.pkl").write_bytes(pickle.dumps({w: i for i, w in enumerate(words)}))
    return folder


def test_glove_vectorizer_encodes_like_the_dataset(glove_folder):
    vectorizer = GloveVectorizer.from_folder(glove_folder)
    vectors = np.load(glove_folder / "our_vab_data.npy")
    words, pos, length = vectorizer.encode(["a/DET", "man/NOUN", "walk/VERB", "left/ADJ", "zebra/NOUN"])
    assert words.shape == (22, 300) and pos.shape == (22, 15) and length == 7  # sos + 5 words + eos
    np.testing.assert_array_equal(words[0], vectors[1])  # sos
    np.testing.assert_array_equal(words[5], vectors[0])  # unknown word -> unk
    np.testing.assert_array_equal(words[7:], np.repeat(vectors[:1], 15, axis=0))  # unk padding
    # POS one-hots: DET=2, NOUN=1, walk is an Act_VIP (12), left a Loc_VIP (9), unknown -> OTHER (14).
    assert pos.argmax(1)[:7].tolist() == [14, 2, 1, 12, 9, 14, 14]
    assert vectorizer.encode(["a/DET"] * 30)[2] == 22  # at most 20 words


def test_glove_pickles_with_objects_are_refused(glove_folder):
    (glove_folder / "our_vab_idx.pkl").write_bytes(pickle.dumps(OrderedDict(unk=0)))
    with pytest.raises(ValueError, match=r"refusing to load collections\.OrderedDict"):
        GloveVectorizer.from_folder(glove_folder)


def test_t2m_text_embeddings_follow_the_input_order_and_checkpoint_round_trip(t2m_evaluator, glove_folder, tmp_path):
    embedder = _embedder(t2m_evaluator, GloveVectorizer.from_folder(glove_folder))
    captions = [["a/DET", "man/NOUN", "walk/VERB", "left/ADJ", "slowly/ADV"], ["man/NOUN"], ["a/DET", "man/NOUN"]]
    texts = ["a man walks left slowly", "man", "a man"]
    batch = embedder.embed_texts(texts, captions)
    alone = np.concatenate([embedder.embed_texts([t], [c]) for t, c in zip(texts, captions, strict=True)])
    assert batch.shape == (3, 512)
    np.testing.assert_allclose(batch, alone, atol=1e-5)
    path = tmp_path / "finest.tar"
    torch.save(
        {
            "text_encoder": t2m_evaluator.text_encoder.state_dict(),
            "movement_encoder": t2m_evaluator.movement_encoder.state_dict(),
            "motion_encoder": t2m_evaluator.motion_encoder.state_dict(),
            "epoch": 3,
        },
        path,
    )
    loaded = _embedder(T2MEvaluator.from_checkpoint(path), embedder.vectorizer)
    np.testing.assert_array_equal(loaded.embed_texts(texts, captions), batch)
    # The published folder layout: t2m/text_mot_match/model/finest.tar beside glove/our_vab_*.
    (tmp_path / "t2m" / "text_mot_match" / "model").mkdir(parents=True)
    path.rename(tmp_path / "t2m" / "text_mot_match" / "model" / "finest.tar")
    from_folder = load_t2m_embedder(tmp_path)
    np.testing.assert_array_equal(from_folder.embed_texts(texts, captions), batch)
    np.testing.assert_array_equal(from_folder.mean_eval, load_eval_stats()[0])


# --- contrastive evaluator ------------------------------------------------------------------------------------------

ACTIONS = ["walks", "jumps", "waves", "kicks", "spins", "crouches"]
DIRECTIONS = ["forward", "backward", "to the left", "to the right"]
SPEEDS = ["slowly", "quickly"]


def toy_pairs(count: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Captions from 6 actions × 4 directions × 2 speeds; each attribute leaves its own trace in the features."""
    pairs = []
    for _ in range(count):
        action, direction, speed = rng.integers(6), rng.integers(4), rng.integers(2)
        frames = int(rng.integers(24, 48))
        t = np.arange(frames) / 20.0
        z = 0.3 * rng.standard_normal((frames, 263))
        z[:, 4 + 10 * action : 14 + 10 * action] += 2 * np.sin(2 * np.pi * (1.0, 3.0)[speed] * t)[:, None]
        z[:, 1:3] += 2 * np.array([[0, 1], [0, -1], [1, 0], [-1, 0]][direction])
        caption = f"a person {ACTIONS[action]} {DIRECTIONS[direction]} {SPEEDS[speed]}"
        pairs.append((caption, z.astype(np.float32)))
    return pairs


SMALL = ContrastiveConfig(
    motion_channels=64, motion_blocks=2, text_width=64, text_layers=1, embed_dim=64, max_frames=48
)
UNIT_STATS = (np.zeros(263), np.ones(263))


def test_contrastive_evaluator_learns_the_toy_pairs(tmp_path, one_thread):
    rng = np.random.default_rng(10)
    train, held_out = toy_pairs(512, rng), toy_pairs(64, rng)
    model = train_contrastive(
        train, steps=200, seed=0, batch_size=32, learning_rate=3e-3, config=SMALL, feature_stats=UNIT_STATS
    )
    text = model.embed_texts([c for c, _ in held_out])
    motion = model.embed_motions([m for _, m in held_out])
    assert text.shape == motion.shape == (64, 64)
    recall = r_precision(text, motion, rng=np.random.default_rng(0))
    assert recall[0] > 0.3 and recall[2] > 0.6, recall  # chance: 1/32 and 3/32
    path = tmp_path / "contrastive.safetensors"
    save_contrastive(model, path)
    loaded = load_contrastive(path)
    np.testing.assert_allclose(loaded.embed_motions([m for _, m in held_out[:5]]), motion[:5], atol=1e-6)
    # Unknown words fall back to one row; padding to another batch's length only moves float rounding.
    np.testing.assert_allclose(
        loaded.embed_texts([c for c, _ in held_out[:5]] + ["zebra dances"])[:5], text[:5], atol=1e-6
    )


def test_contrastive_training_is_deterministic(one_thread):
    pairs = toy_pairs(40, np.random.default_rng(11))
    runs = [
        train_contrastive(pairs, steps=3, seed=5, batch_size=8, config=SMALL, feature_stats=UNIT_STATS)
        for _ in range(2)
    ]
    for key, value in runs[0].state_dict().items():
        torch.testing.assert_close(value, runs[1].state_dict()[key], rtol=0, atol=0)


# --- protocol -------------------------------------------------------------------------------------------------------


def write_dataset(folder: Path, count: int = 36) -> None:
    rng = np.random.default_rng(12)
    (folder / "new_joint_vecs").mkdir(parents=True)
    (folder / "texts").mkdir()
    ids = [f"{i:06d}" for i in range(count)]
    for i, clip_id in enumerate(ids):
        frames = 30 if i == 0 else int(rng.integers(40, 120))  # clip 0 is too short and skipped
        np.save(folder / "new_joint_vecs" / f"{clip_id}.npy", rng.standard_normal((frames, 263)).astype(np.float32))
        lines = [
            f"a person walks number {i}#a/DET person/NOUN walk/VERB#0.0#0.0",
            f"someone moves {i}#someone/PRON#nan#nan",
        ]
        if i == 1:
            lines.append("a timed part#a/DET#0.5#2.75")  # frames 10..55: a 45-frame segment item
        (folder / "texts" / f"{clip_id}.txt").write_text("\n".join(lines) + "\n")
    (folder / "test.txt").write_text("\n".join([*ids, "missing"]) + "\n")


class FakeTasks:
    """Stands in for the model: noisy copies for text-to-motion, fixed captions, and an in-betweener that returns
    the ground truth (its ADE/FDE must be exactly 0)."""

    def __init__(self):
        self.rng = np.random.default_rng(13)

    def text_to_motion(self, texts, frames, seeds, candidates=1):
        return [[self.rng.standard_normal((n, 263)).astype(np.float32) for _ in range(candidates)] for n in frames]

    def motion_to_text(self, clips):
        return ["a person walks" for _ in clips]

    def predict(self, prefix, frames, seed):
        return np.concatenate([prefix, np.repeat(prefix[-1:], frames, axis=0)])

    def inbetween(self, clip, known, seed):
        return clip.copy()


class MeanEmbedder:
    name = "mean"

    def embed_motions(self, clips):
        return np.stack([np.asarray(c)[:, :8].mean(0) for c in clips])

    def embed_texts(self, texts, tokens=None):
        return np.stack([np.full(8, len(t) / 10.0) for t in texts])


def test_dataset_items_follow_the_t2m_loader(tmp_path):
    write_dataset(tmp_path)
    items = load_humanml3d_items(tmp_path, "test")
    names = [item.name for item in items]
    assert "000000" not in names and len(items) == 35 + 1  # short clip dropped, one timed segment added
    segment = next(item for item in items if "#" in item.name)
    assert segment.name == "000001#0.5-2.75" and len(segment.features) == 45
    whole = next(item for item in items if item.name == "000002")
    assert whole.captions == ("a person walks number 2", "someone moves 2")
    assert whole.tokens[0] == ("a/DET", "person/NOUN", "walk/VERB")
    assert parse_caption_line("x#a/DET#nan#nan") == ("x", ("a/DET",), 0.0, 0.0)


def test_protocol_report_on_a_fake_model(tmp_path):
    write_dataset(tmp_path / "data")
    items = load_humanml3d_items(tmp_path / "data", "test")
    options = EvalOptions(replications=3, mm_texts=5, mm_repeats=4, mm_times=3)
    report = evaluate(FakeTasks(), items, MeanEmbedder(), options, log=lambda message: None)
    json.dumps(report)  # serialisable
    for task in ("gt", "t2m", "m2t"):
        assert {"r_precision_top1", "r_precision_top3", "mm_dist"} <= set(report[task])
    assert {"fid", "diversity", "multimodality"} <= set(report["t2m"])
    assert report["inbetween"]["ade"] == {"mean": 0.0, "interval": 0.0}
    assert report["inbetween"]["fde"]["mean"] == 0.0
    assert report["pred"]["ade"]["mean"] > 0.0
    assert set(report["m2t_text"]) == {"bleu_1", "bleu_4", "rouge_l", "cider", "bertscore_f1"}
    assert report["protocol"]["items"] == 36 and report["protocol"]["replications"] == 3
    assert all(v["interval"] >= 0 for task in ("gt", "t2m") for v in report[task].values())
    again = evaluate(FakeTasks(), items, MeanEmbedder(), options, log=lambda message: None)
    assert again["t2m"] == report["t2m"]  # seeded end to end


def test_eval_command_arguments():
    parser = argparse.ArgumentParser()
    add_eval_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--data", "d", "--evaluator", "e.safetensors", "--samples", "64", "-o", "r.json"])
    assert (args.split, args.replications, args.samples, args.t2m_evaluator) == ("test", 20, 64, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--data", "d", "--evaluator", "e", "--t2m-evaluator", "t", "-o", "r.json"])
