"""The Guo et al. T2M text–motion matching evaluator (`text_mot_match`), loadable from a user's `finest.tar`.

Architecture, input conventions and file names per HUMANML3D.md §7.1 (MoMask `models/t2m_eval_modules.py`,
`t2m_eval_wrapper.py`, `utils/word_vectorizer.py`). Module and parameter names mirror the original so the
published state dicts load strictly. Unlike the original wrapper, every embedding function here returns its
rows in the ORDER OF ITS INPUTS (packing uses `enforce_sorted=False`; nothing is re-sorted by length).
Nothing is downloaded: the checkpoint, the GloVe files and (for free text) spaCy's `en_core_web_sm` must
already be on disk.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

EVAL_ASSETS = Path(__file__).resolve().parents[1] / "assets" / "eval"

POS_CATEGORIES = {
    "VERB": 0,
    "NOUN": 1,
    "DET": 2,
    "ADP": 3,
    "NUM": 4,
    "AUX": 5,
    "PRON": 6,
    "ADJ": 7,
    "ADV": 8,
    "Loc_VIP": 9,
    "Body_VIP": 10,
    "Obj_VIP": 11,
    "Act_VIP": 12,
    "Desc_VIP": 13,
    "OTHER": 14,
}
# Words whose POS is overridden by a "VIP" category (checked in this order, as upstream).
VIP_WORDS = {
    "Loc_VIP": (
        "left right clockwise counterclockwise anticlockwise forward back backward up down straight curve"
    ).split(),
    "Body_VIP": "arm chin foot feet face hand mouth leg waist eye knee shoulder thigh".split(),
    "Obj_VIP": "stair dumbbell chair window floor car ball handrail baseball basketball".split(),
    "Act_VIP": (
        "walk run swing pick bring kick put squat throw hop dance jump turn stumble dance stop sit lift lower raise "
        "wash stand kneel stroll rub bend balance flap jog shuffle lean rotate spin spread climb"
    ).split(),
    "Desc_VIP": "slowly carefully fast careful slow quickly happy angry sad happily angrily sadly".split(),
}

WORD_DIM = 300
MAX_TEXT_TOKENS = 20  # words kept; the sequence is sos + words + eos, padded with unk to 22
MAX_MOTION_FRAMES = 196  # GT clips are zero-padded to this length (MDM Text2MotionDatasetV2)
UNIT_LENGTH = 4  # the movement encoder down-samples time ×4; GRU lengths are m_lens // 4
CONTACT_DIMS = 4  # the evaluator reads motions[..., :-4]


def init_weight(module: nn.Module) -> None:
    """Xavier-normal weights and zero biases for Conv1d/Linear, as the original (random-weight tests only)."""
    if isinstance(module, nn.Conv1d | nn.Linear):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class MovementConvEncoder(nn.Module):
    """[B, T, 259] -> [B, T/4, 512]: two Conv1d(k=4, s=2, p=1) + Dropout(0.2) + LeakyReLU(0.2), then Linear."""

    def __init__(self, input_size: int = 259, hidden_size: int = 512, output_size: int = 512):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden_size, 4, 2, 1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden_size, output_size, 4, 2, 1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(output_size, output_size)
        self.apply(init_weight)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.out_net(self.main(inputs.permute(0, 2, 1)).permute(0, 2, 1))


def _co_embedding_head(hidden_size: int, output_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(hidden_size * 2, hidden_size),
        nn.LayerNorm(hidden_size),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden_size, output_size),
    )


def _bigru_final_state(gru: nn.GRU, hidden: torch.Tensor, inputs: torch.Tensor, lengths: torch.Tensor):
    """Concatenated final forward/backward states [B, 2H] of a packed BiGRU, rows in input order."""
    if int(lengths.min()) < 1:
        raise ValueError(f"every sequence needs at least one step, got lengths {lengths.tolist()}")
    packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
    _, last = gru(packed, hidden.repeat(1, inputs.shape[0], 1))  # h_n is returned in input order
    return torch.cat([last[0], last[1]], dim=-1)


class TextEncoderBiGRUCo(nn.Module):
    """(GloVe [B, S, 300], POS one-hot [B, S, 15], lengths [B]) -> [B, 512]."""

    def __init__(self, word_size: int = 300, pos_size: int = 15, hidden_size: int = 512, output_size: int = 512):
        super().__init__()
        self.pos_emb = nn.Linear(pos_size, word_size)
        self.input_emb = nn.Linear(word_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = _co_embedding_head(hidden_size, output_size)
        self.apply(init_weight)
        self.hidden = nn.Parameter(torch.randn((2, 1, hidden_size)))  # learned initial state

    def forward(self, word_embs: torch.Tensor, pos_onehot: torch.Tensor, cap_lens: torch.Tensor) -> torch.Tensor:
        inputs = self.input_emb(word_embs + self.pos_emb(pos_onehot))
        return self.output_net(_bigru_final_state(self.gru, self.hidden, inputs, cap_lens))


class MotionEncoderBiGRUCo(nn.Module):
    """(movement codes [B, T/4, 512], lengths in units of 4 frames [B]) -> [B, 512]."""

    def __init__(self, input_size: int = 512, hidden_size: int = 1024, output_size: int = 512):
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = _co_embedding_head(hidden_size, output_size)
        self.apply(init_weight)
        self.hidden = nn.Parameter(torch.randn((2, 1, hidden_size)))

    def forward(self, inputs: torch.Tensor, m_lens: torch.Tensor) -> torch.Tensor:
        return self.output_net(_bigru_final_state(self.gru, self.hidden, self.input_emb(inputs), m_lens))


class T2MEvaluator(nn.Module):
    """The three encoders of `text_mot_match`; `embed_*` return rows in input order."""

    def __init__(self) -> None:
        super().__init__()
        self.text_encoder = TextEncoderBiGRUCo()
        self.movement_encoder = MovementConvEncoder()
        self.motion_encoder = MotionEncoderBiGRUCo()
        self.eval()

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> T2MEvaluator:
        """Load `finest.tar` (keys text_encoder / movement_encoder / motion_encoder; tensors only, strict)."""
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        missing = [k for k in ("text_encoder", "movement_encoder", "motion_encoder") if k not in state]
        if missing:
            raise ValueError(f"{path}: not a T2M text_mot_match checkpoint (missing {', '.join(missing)})")
        evaluator = cls()
        for name in ("text_encoder", "movement_encoder", "motion_encoder"):
            getattr(evaluator, name).load_state_dict(state[name], strict=True)
        return evaluator.eval()

    @property
    def device(self) -> torch.device:
        return self.text_encoder.hidden.device

    @torch.no_grad()
    def embed_motion_batch(self, motions: torch.Tensor, m_lens: torch.Tensor) -> torch.Tensor:
        """Evaluator-normalised, zero-padded motions [B, T, 263] and frame counts [B] -> [B, 512], input order."""
        movements = self.movement_encoder(motions[..., :-CONTACT_DIMS].float())
        return self.motion_encoder(movements, torch.div(m_lens, UNIT_LENGTH, rounding_mode="floor"))

    @torch.no_grad()
    def embed_text_batch(self, word_embs: torch.Tensor, pos_onehot: torch.Tensor, lengths: torch.Tensor):
        """GloVe [B, S, 300], POS [B, S, 15], token counts [B] (sos/eos included) -> [B, 512], input order."""
        return self.text_encoder(word_embs.float(), pos_onehot.float(), lengths)


class _ListsOnlyUnpickler(pickle.Unpickler):
    """The GloVe word list / index are plain lists and dicts: refuse anything that needs a class or function."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a GloVe vocabulary pickle")


def _load_plain_pickle(path: Path):
    with path.open("rb") as handle:
        try:
            return _ListsOnlyUnpickler(handle).load()
        except pickle.UnpicklingError as error:
            raise ValueError(f"{path}: {error}") from error


def pos_one_hot(pos: str) -> np.ndarray:
    vector = np.zeros(len(POS_CATEGORIES), dtype=np.float32)
    vector[POS_CATEGORIES.get(pos, POS_CATEGORIES["OTHER"])] = 1.0
    return vector


class GloveVectorizer:
    """`word/POS` tokens -> (300-d GloVe vector, 15-d POS one-hot), as `utils/word_vectorizer.py`.

    Unknown words map to the `unk` vector with POS OTHER; words in the VIP lists take their VIP category.
    """

    def __init__(self, vectors: np.ndarray, word_to_index: dict[str, int]):
        if vectors.ndim != 2 or vectors.shape[1] != WORD_DIM or "unk" not in word_to_index:
            raise ValueError(f"GloVe table must be [V, {WORD_DIM}] with an 'unk' entry, got {vectors.shape}")
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.word_to_index = dict(word_to_index)
        self._vip: dict[str, str] = {}
        for category, words in VIP_WORDS.items():  # the first listed category wins, as upstream's loop
            for word in words:
                self._vip.setdefault(word, category)

    @classmethod
    def from_folder(cls, folder: str | Path, prefix: str = "our_vab") -> GloveVectorizer:
        """`<prefix>_data.npy`, `<prefix>_words.pkl`, `<prefix>_idx.pkl` from a user-given folder (no download)."""
        folder = Path(folder)
        paths = [folder / f"{prefix}_{suffix}" for suffix in ("data.npy", "words.pkl", "idx.pkl")]
        absent = [str(p) for p in paths if not p.is_file()]
        if absent:
            raise FileNotFoundError(f"GloVe files not found: {', '.join(absent)} (MDM prepare/download_glove.sh)")
        vectors = np.load(paths[0], allow_pickle=False)
        words, word_to_index = _load_plain_pickle(paths[1]), _load_plain_pickle(paths[2])
        return cls(vectors, {w: int(word_to_index[w]) for w in words})

    def __getitem__(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        word, _, pos = token.partition("/")
        if word not in self.word_to_index:
            return self.vectors[self.word_to_index["unk"]], pos_one_hot("OTHER")
        return self.vectors[self.word_to_index[word]], pos_one_hot(self._vip.get(word, pos))

    def encode(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
        """`word/POS` tokens -> (word vectors [22, 300], POS [22, 15], length incl. sos/eos): at most 20 words,
        wrapped in sos/OTHER … eos/OTHER and padded with unk/OTHER (MDM Text2MotionDatasetV2)."""
        words = list(tokens)[:MAX_TEXT_TOKENS]
        sequence = ["sos/OTHER", *words, "eos/OTHER"]
        length = len(sequence)
        sequence += ["unk/OTHER"] * (MAX_TEXT_TOKENS + 2 - length)
        vectors, pos = zip(*(self[token] for token in sequence), strict=True)
        return np.stack(vectors), np.stack(pos), length


@lru_cache(maxsize=1)
def _spacy_pipeline():
    try:
        import spacy
    except ImportError as error:
        raise RuntimeError("free-text captions need spaCy with en_core_web_sm (pip install spacy)") from error
    try:
        return spacy.load("en_core_web_sm")
    except OSError as error:
        raise RuntimeError("spaCy's en_core_web_sm model is not installed (it is never downloaded here)") from error


def spacy_tokens(sentence: str) -> list[str]:
    """HumanML3D's caption processing: drop '-', keep alphabetic tokens, lemmatise NOUN/VERB except 'left'."""
    tokens = []
    for token in _spacy_pipeline()(sentence.replace("-", "").strip()):
        if not token.text.isalpha():
            continue
        keep_form = token.pos_ not in ("NOUN", "VERB") or token.text == "left"
        tokens.append(f"{token.text if keep_form else token.lemma_}/{token.pos_}")
    return tokens


def load_eval_stats() -> tuple[np.ndarray, np.ndarray]:
    """The evaluator's feature mean/std (263,), bundled (HUMANML3D.md §8)."""
    return np.load(EVAL_ASSETS / "mean_eval.npy"), np.load(EVAL_ASSETS / "std_eval.npy")


def pad_clips(clips: Sequence[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length [T_i, C] clips -> zero-padded [B, length, C] and lengths [B]."""
    lengths = np.array([len(c) for c in clips])
    batch = np.zeros((len(clips), length, clips[0].shape[1]), dtype=np.float32)
    for i, clip in enumerate(clips):
        batch[i, : len(clip)] = clip
    return batch, lengths


@dataclass
class T2MEmbedder:
    """Raw 263-d clips and captions -> T2M co-embeddings [N, 512], rows in input order."""

    evaluator: T2MEvaluator
    vectorizer: GloveVectorizer | None
    mean_eval: np.ndarray
    std_eval: np.ndarray
    batch_size: int = 64
    name: str = "t2m"

    def embed_motions(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Raw (un-normalised) features [T_i, 263], T_i ≥ 4 -> [N, 512]; zero-padded to 196 frames as upstream."""
        if any(len(c) < UNIT_LENGTH for c in clips):
            raise ValueError(f"the T2M evaluator needs clips of at least {UNIT_LENGTH} frames")
        normalised = [((np.asarray(c, np.float64) - self.mean_eval) / self.std_eval).astype(np.float32) for c in clips]
        pad = max(MAX_MOTION_FRAMES, *(len(c) for c in normalised))  # exactly 196 as upstream: the conv edge matters
        out = []
        for start in range(0, len(normalised), self.batch_size):
            batch, lengths = pad_clips(normalised[start : start + self.batch_size], pad)
            device = self.evaluator.device
            out.append(self.evaluator.embed_motion_batch(torch.from_numpy(batch).to(device), torch.from_numpy(lengths)))
        return torch.cat(out).cpu().numpy()

    def embed_texts(self, texts: Sequence[str], tokens: Sequence[Sequence[str] | None] | None = None) -> np.ndarray:
        """Captions -> [N, 512]; uses the given `word/POS` tokens (HumanML3D texts files) or spaCy for free text."""
        if self.vectorizer is None:
            raise RuntimeError("the T2M text encoder needs the GloVe files (our_vab_*)")
        tokens = list(tokens) if tokens is not None else [None] * len(texts)
        encoded = [
            self.vectorizer.encode(tok if tok is not None else spacy_tokens(t))
            for t, tok in zip(texts, tokens, strict=True)
        ]
        out = []
        for start in range(0, len(encoded), self.batch_size):
            chunk = encoded[start : start + self.batch_size]
            words = torch.from_numpy(np.stack([c[0] for c in chunk])).to(self.evaluator.device)
            pos = torch.from_numpy(np.stack([c[1] for c in chunk])).to(self.evaluator.device)
            out.append(self.evaluator.embed_text_batch(words, pos, torch.tensor([c[2] for c in chunk])))
        return torch.cat(out).cpu().numpy()


CHECKPOINT_CANDIDATES = (
    "finest.tar",
    "text_mot_match/model/finest.tar",
    "t2m/text_mot_match/model/finest.tar",
)
GLOVE_CANDIDATES = (".", "glove", "../glove")


def load_t2m_embedder(folder: str | Path, device: str = "cpu") -> T2MEmbedder:
    """The T2M evaluator from a user's folder: finest.tar at one of CHECKPOINT_CANDIDATES and the GloVe files
    (our_vab_*) in the folder or its `glove/` subfolder; the bundled mean_eval/std_eval normalise motions."""
    folder = Path(folder)
    checkpoint = next((folder / c for c in CHECKPOINT_CANDIDATES if (folder / c).is_file()), None)
    if checkpoint is None:
        raise FileNotFoundError(
            f"{folder}: no T2M evaluator checkpoint ({' or '.join(CHECKPOINT_CANDIDATES)}); "
            "MDM prepare/download_t2m_evaluators.sh fetches it"
        )
    glove = next((folder / g for g in GLOVE_CANDIDATES if (folder / g / "our_vab_data.npy").is_file()), None)
    if glove is None:
        raise FileNotFoundError(f"{folder}: no GloVe files (our_vab_data.npy in the folder or glove/)")
    vectorizer = GloveVectorizer.from_folder(glove)
    mean_eval, std_eval = load_eval_stats()
    evaluator = T2MEvaluator.from_checkpoint(checkpoint).to(device)
    return T2MEmbedder(evaluator, vectorizer, mean_eval, std_eval)
