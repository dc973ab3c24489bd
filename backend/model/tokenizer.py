"""The MotionGPT3 tokenizer: GPT-2 BPE loaded offline from the bundled files, plus the six motion tokens.

Token ids are fixed by the official checkpoint (MOTIONGPT3_SPEC.md §2.1) and checked after construction.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from .config import EOM_ID, EOS_ID, HOLDER_INPUT_ID, HOLDER_OUTPUT_ID, MASKED_MOTION_ID, PAD_MOTION_ID, SOM_ID

TOKENIZER_DIR = Path(__file__).resolve().parents[1] / "assets" / "gpt2_tokenizer"

SOM = "<start_of_motion>"
EOM = "<end_of_motion>"
MASKED_MOTION = "<masked_motion>"
PAD_MOTION = "<pad_motion>"
HOLDER_OUTPUT = "<motion_latent_holder_output>"
HOLDER_INPUT = "<motion_latent_holder>"
EOS = "<|endoftext|>"

EXPECTED_IDS = {
    SOM: SOM_ID,
    EOM: EOM_ID,
    MASKED_MOTION: MASKED_MOTION_ID,
    PAD_MOTION: PAD_MOTION_ID,
    HOLDER_OUTPUT: HOLDER_OUTPUT_ID,
    HOLDER_INPUT: HOLDER_INPUT_ID,
}


CONTROL_TOKENS = (EOS, SOM, EOM, MASKED_MOTION, PAD_MOTION, HOLDER_OUTPUT, HOLDER_INPUT)

# The fast tokenizer is shared by the server's I/O thread (validating texts) and its model thread; transformers may
# adjust the Rust tokenizer's settings inside a call, which two threads must not do at once.
_TOKENIZER_LOCK = threading.Lock()


class PromptTooLongError(ValueError):
    """A prompt does not fit the model's prompt length."""


class ControlTokenError(ValueError):
    """A user's text spells one of the model's control tokens (the tokenizer would read it as that token)."""


@lru_cache(maxsize=2)
def load_tokenizer(folder: str | Path = TOKENIZER_DIR) -> Any:
    """GPT-2 tokenizer from local files (never a hub) with the motion tokens at their official ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    # Order matters for the ids: SOM/EOM are text-branch tokens, then the motion-branch tokens (§2.1).
    tokenizer.add_special_tokens({"additional_special_tokens": [SOM, EOM]})
    tokenizer.add_special_tokens({"additional_special_tokens": [MASKED_MOTION, PAD_MOTION]})
    tokenizer.add_tokens([HOLDER_OUTPUT, HOLDER_INPUT])
    tokenizer.pad_token = EOS
    ids = dict(zip(EXPECTED_IDS, tokenizer.convert_tokens_to_ids(list(EXPECTED_IDS)), strict=True))
    if ids != EXPECTED_IDS or tokenizer.convert_tokens_to_ids(EOS) != EOS_ID:
        raise RuntimeError(f"tokenizer in {folder} gives motion token ids {ids}, expected {EXPECTED_IDS}")
    return tokenizer


def token_ids(text: str) -> list[int]:
    """The token ids of a text, control tokens included, without BOS/EOS added."""
    tokenizer = load_tokenizer()
    with _TOKENIZER_LOCK:
        return tokenizer(text, add_special_tokens=False)["input_ids"]


def decode_ids(ids: list[int]) -> str:
    """Token ids -> text, control tokens dropped."""
    tokenizer = load_tokenizer()
    with _TOKENIZER_LOCK:
        return tokenizer.decode(ids, skip_special_tokens=True)


def count_text_tokens(text: str) -> int:
    """How many tokens a user's text takes in a prompt; ControlTokenError when it spells a control token."""
    for token in CONTROL_TOKENS:
        if token in text:
            raise ControlTokenError(f"contains the model's control token {token!r}")
    return len(token_ids(text))


def motion_input_sequence(holders: int) -> str:
    """An input motion in a prompt: SOM, `holders` input placeholders (filled by a latent), EOM."""
    return SOM + HOLDER_INPUT * holders + EOM


def motion_output_sequence(holders: int) -> str:
    """The motion the model is asked to produce: SOM, `holders` output placeholders, EOM."""
    return SOM + HOLDER_OUTPUT * holders + EOM


def masked_motion_span(holders: int) -> str:
    """The masked middle of an in-betweening prompt."""
    return MASKED_MOTION * holders


@dataclass(frozen=True)
class TokenBatch:
    """Token ids [B, S], attention mask [B, S] (1 real) and position ids [B, S] of a padded batch."""

    ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor


def tokenize_batch(
    prompts: list[str], max_tokens: int, padding_side: str = "right", pad_to_max: bool = False
) -> TokenBatch:
    """Tokenize and pad to the longest prompt (or, with `pad_to_max`, to `max_tokens` as upstream does); positions
    count real tokens from 0 (right or left padding)."""
    encoded = [token_ids(p) for p in prompts]
    for prompt, ids in zip(prompts, encoded, strict=True):
        if len(ids) > max_tokens:
            raise PromptTooLongError(
                f"prompt is {len(ids)} tokens, the limit is {max_tokens}: shorten it ({prompt[:40]!r}...)"
            )
    width = max_tokens if pad_to_max else max(len(ids) for ids in encoded)
    ids = torch.full((len(encoded), width), EOS_ID, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, tokens in enumerate(encoded):
        span = slice(0, len(tokens)) if padding_side == "right" else slice(width - len(tokens), width)
        ids[row, span] = torch.tensor(tokens, dtype=torch.long)
        mask[row, span] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return TokenBatch(ids, mask, positions)
