"""Caption metrics for motion-to-text: corpus BLEU@n, ROUGE-L, CIDEr-D and (optional, local-only) BERTScore.

Self-contained re-implementations of the algorithms behind MotionGPT3's numbers (HUMANML3D.md §7.3):
* BLEU: tensorflow/nmt `compute_bleu` (what nlg-metricverse's and HF evaluate's "bleu" run): corpus-level
  clipped n-gram precisions, geometric mean, no smoothing, brevity penalty against the *shortest* reference
  of each clip (sacrebleu and nltk use the closest-length reference, so they differ slightly);
* ROUGE-L: Google `rouge-score` LCS F-measure (β = 1) per prediction, best reference, averaged;
* CIDEr-D: the COCO caption toolkit scorer (vrama91): tf-idf vectors of 1..4-grams with document frequencies
  over the reference sets of the corpus, clipped cosine similarity, Gaussian length penalty σ = 6, mean over
  n and over references, × 10.
Tokenisation (all three): lowercase, ASCII punctuation -> space, split on whitespace (nlg-metricverse's
normaliser). Scores are fractions (papers print BLEU/ROUGE/CIDEr × 100); toolkits differ, don't compare across.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")

Ngram = tuple[str, ...]


def caption_tokens(text: str) -> list[str]:
    """'A man walks, then turns left.' -> ['a', 'man', 'walks', 'then', 'turns', 'left']."""
    return _PUNCTUATION.sub(" ", str(text)).lower().split()


def ngram_counts(tokens: Sequence[str], max_order: int) -> Counter[Ngram]:
    """Counts of every n-gram of order 1..max_order."""
    return Counter(tuple(tokens[i : i + n]) for n in range(1, max_order + 1) for i in range(len(tokens) - n + 1))


def _check_corpus(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[list[str]]:
    if len(predictions) != len(references) or not predictions:
        raise ValueError(f"need one reference list per prediction: {len(predictions)} vs {len(references)}")
    refs = [[references[i]] if isinstance(references[i], str) else list(references[i]) for i in range(len(references))]
    if any(not r for r in refs):
        raise ValueError("every prediction needs at least one reference")
    return refs


def bleu(predictions: Sequence[str], references: Sequence[Sequence[str]], max_order: int = 4) -> float:
    """Corpus BLEU with uniform weights over orders 1..max_order (tensorflow/nmt algorithm, no smoothing)."""
    refs = _check_corpus(predictions, references)
    matches = [0] * max_order
    possible = [0] * max_order
    hyp_length = ref_length = 0
    for prediction, clip_refs in zip(predictions, refs, strict=True):
        hyp = caption_tokens(prediction)
        ref_tokens = [caption_tokens(r) for r in clip_refs]
        hyp_length += len(hyp)
        ref_length += min(len(r) for r in ref_tokens)
        max_ref_counts: Counter[Ngram] = Counter()
        for tokens in ref_tokens:
            max_ref_counts |= ngram_counts(tokens, max_order)  # element-wise max = clipping counts
        for ngram, count in (ngram_counts(hyp, max_order) & max_ref_counts).items():
            matches[len(ngram) - 1] += count
        for n in range(1, max_order + 1):
            possible[n - 1] += max(len(hyp) - n + 1, 0)
    precisions = [m / p if p > 0 else 0.0 for m, p in zip(matches, possible, strict=True)]
    if min(precisions) <= 0 or hyp_length == 0:
        return 0.0
    geo_mean = math.exp(sum(math.log(p) for p in precisions) / max_order)
    ratio = hyp_length / ref_length if ref_length else math.inf
    brevity = 1.0 if ratio > 1.0 else math.exp(1.0 - 1.0 / ratio)
    return geo_mean * brevity


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, O(len a · len b))."""
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l_pair(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure of one prediction against one reference: 2PR/(P+R), P = LCS/|pred|, R = LCS/|ref|."""
    hyp, ref = caption_tokens(prediction), caption_tokens(reference)
    if not hyp or not ref:
        return 0.0
    lcs = lcs_length(hyp, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Mean over predictions of the best ROUGE-L F-measure against that prediction's references."""
    refs = _check_corpus(predictions, references)
    scores = [max(rouge_l_pair(p, r) for r in clip_refs) for p, clip_refs in zip(predictions, refs, strict=True)]
    return sum(scores) / len(scores)


def _tfidf(counts: Counter[Ngram], document_frequency: Counter[Ngram], log_corpus: float, n: int):
    """Per-order tf-idf vectors, their norms and the "length" the toolkit uses (the bigram count)."""
    vectors: list[dict[Ngram, float]] = [{} for _ in range(n)]
    norms = [0.0] * n
    for ngram, tf in counts.items():
        weight = tf * (log_corpus - math.log(max(1.0, document_frequency[ngram])))
        vectors[len(ngram) - 1][ngram] = weight
        norms[len(ngram) - 1] += weight * weight
    # The COCO scorer counts the *bigram* term frequencies as the length (`if n == 1` on a 0-based order);
    # for non-empty captions that is words - 1, so the length difference is the word-count difference.
    length = sum(tf for ngram, tf in counts.items() if len(ngram) == 2)
    return vectors, [math.sqrt(v) for v in norms], length


def cider_d(predictions: Sequence[str], references: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0) -> float:
    """Corpus CIDEr-D (COCO caption toolkit): mean over clips of
    10 · mean_n [ (1/|refs|) Σ_refs  Σ_g min(h_g, r_g) r_g / (‖h‖ ‖r‖) · exp(−(ℓh − ℓr)² / 2σ²) ]
    with tf-idf weights tf · (log |corpus| − log max(1, df)); df counts the clips whose references contain g.
    A one-clip corpus scores 0 (every reference n-gram has idf log 1 − log 1 = 0)."""
    refs = _check_corpus(predictions, references)
    hyp_counts = [ngram_counts(caption_tokens(p), n) for p in predictions]
    ref_counts = [[ngram_counts(caption_tokens(r), n) for r in clip_refs] for clip_refs in refs]
    document_frequency: Counter[Ngram] = Counter()
    for clip in ref_counts:
        document_frequency.update(set().union(*clip))
    log_corpus = math.log(len(predictions))
    scores = []
    for hyp, clip in zip(hyp_counts, ref_counts, strict=True):
        vec_h, norm_h, len_h = _tfidf(hyp, document_frequency, log_corpus, n)
        total = [0.0] * n
        for ref in clip:
            vec_r, norm_r, len_r = _tfidf(ref, document_frequency, log_corpus, n)
            penalty = math.exp(-((len_h - len_r) ** 2) / (2 * sigma**2))
            for k in range(n):
                dot = sum(min(w, vec_r[k].get(g, 0.0)) * vec_r[k].get(g, 0.0) for g, w in vec_h[k].items())
                if norm_h[k] != 0 and norm_r[k] != 0:
                    dot /= norm_h[k] * norm_r[k]
                total[k] += dot * penalty
        scores.append(10.0 * sum(total) / n / len(clip))
    return sum(scores) / len(scores)


def caption_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """BLEU@1, BLEU@4, ROUGE-L and CIDEr-D of a corpus (fractions)."""
    return {
        "bleu_1": bleu(predictions, references, max_order=1),
        "bleu_4": bleu(predictions, references, max_order=4),
        "rouge_l": rouge_l(predictions, references),
        "cider": cider_d(predictions, references),
    }


def _cached_in_hub(model_type: str) -> bool:
    """True when the Hugging Face cache holds `model_type`'s config and weights (nothing is downloaded)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = lambda name: isinstance(try_to_load_from_cache(model_type, name), str)  # noqa: E731
    return found("config.json") and (found("model.safetensors") or found("pytorch_model.bin"))


def bertscore_f1(
    predictions: Sequence[str], references: Sequence[Sequence[str]], model_type: str = "roberta-large"
) -> tuple[float | None, str]:
    """Mean BERTScore F1 as MotionGPT3 (bert_score, lang 'en', rescaled with the baseline, idf) -> (value, note).

    Only runs when the `bert_score` package is installed and `model_type` is already in the local Hugging Face
    cache; otherwise returns (None, why). Never downloads.
    """
    refs = _check_corpus(predictions, references)
    try:
        import bert_score
    except ImportError:
        return None, "BERTScore skipped: the bert_score package is not installed (pip install bert-score)"
    if not _cached_in_hub(model_type):
        return None, f"BERTScore skipped: {model_type} is not in the local Hugging Face cache (never downloaded here)"
    _, _, f1 = bert_score.score(
        list(predictions), refs, model_type=model_type, lang="en", rescale_with_baseline=True, idf=True, verbose=False
    )
    return float(f1.mean()), f"bert_score {bert_score.__version__}, {model_type}, rescaled, idf"
