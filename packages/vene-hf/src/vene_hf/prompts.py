"""Tokenizer-aware helpers for patching prompts: token strings, subject positions, target ids, alignment.

Example::

    from vene_hf.prompts import encode, subject_positions, target_token_id

    enc = encode(tokenizer, "The Eiffel Tower is located in the city of")
    enc.tokens                                   # ['The', ' E', 'iffel', ' Tower', ...]
    subject_positions(tokenizer, enc.text, "The Eiffel Tower")   # [0, 1, 2, 3]
    target_token_id(tokenizer, " Paris")         # one token id, or a PromptError saying why not
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import frozen

from vene import ConfigError, UnitLocationError

__all__ = [
    "ALIGNMENTS",
    "Encoded",
    "PromptError",
    "align_positions",
    "encode",
    "parse_pairs",
    "subject_positions",
    "target_token_id",
]

#: How ``align_positions`` pairs the positions of prompts of different lengths.
ALIGNMENTS = ("left", "right", "last")


class PromptError(ConfigError):
    """A prompt, subject or target that cannot be used as given (with what to do instead)."""


@frozen
class Encoded:
    """A tokenized prompt: the model inputs (batch 1), its token ids and readable token strings."""

    text: str
    inputs: dict[str, Any]
    ids: list[int]
    tokens: list[str]


def _check_tokenizer(tokenizer: Any) -> None:
    if tokenizer is None:
        raise PromptError(
            "this model has no tokenizer; give a model folder or Hub id that includes tokenizer files."
        )


def encode(tokenizer: Any, text: str) -> Encoded:
    """Tokenize ``text`` as the model sees it (special tokens included) into a batch of one."""
    _check_tokenizer(tokenizer)
    if not isinstance(text, str) or not text.strip():
        raise PromptError(f"a prompt must be non-empty text, got {text!r}.")
    inputs = dict(tokenizer(text, return_tensors="pt"))
    inputs.pop("token_type_ids", None)  # causal LMs take ids and the mask only
    ids = [int(i) for i in inputs["input_ids"][0]]
    return Encoded(text=text, inputs=inputs, ids=ids, tokens=[tokenizer.decode([i]) for i in ids])


def subject_positions(tokenizer: Any, text: str, subject: str) -> list[int]:
    """Positions of the tokens of ``text`` that overlap the first occurrence of ``subject``.

    Found through the tokenizer's offset mapping (characters of ``text`` per token), so a token
    that straddles the subject's edge (" E" in " Eiffel") counts as a subject token.
    """
    _check_tokenizer(tokenizer)
    if not subject:
        raise PromptError("the subject must be a non-empty part of the prompt.")
    start = text.find(subject)
    if start < 0:
        lower = text.lower().find(subject.lower())
        hint = f" (it appears with other capitals as {text[lower:lower + len(subject)]!r})" if lower >= 0 else ""
        raise PromptError(
            f"the subject {subject!r} does not occur in the prompt {text!r}{hint}; pass --subject "
            "with text copied exactly from the prompt."
        )
    end = start + len(subject)
    if not getattr(tokenizer, "is_fast", False):
        raise PromptError(
            "locating the subject needs a fast tokenizer (one with offset mappings); load the "
            "model's tokenizer.json, or use a model whose tokenizer has one."
        )
    offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    found = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
    if not found:
        raise PromptError(f"no token of the prompt {text!r} covers the subject {subject!r}.")
    return found


def target_token_id(tokenizer: Any, target: str, *, first_token: bool = False) -> int:
    """The id of ``target`` as one token; several tokens are refused unless ``first_token``."""
    _check_tokenizer(tokenizer)
    if not isinstance(target, str) or not target:
        raise PromptError(f"a target must be non-empty text such as ' Paris', got {target!r}.")
    ids = [int(i) for i in tokenizer(target, add_special_tokens=False)["input_ids"]]
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise PromptError(f"the target {target!r} tokenizes to no tokens; give a word such as ' Paris'.")
    pieces = ", ".join(repr(tokenizer.decode([i])) for i in ids)
    if first_token:
        return ids[0]
    space = " (most tokenizers need the leading space a word has after the prompt, e.g. ' Paris')" if not target.startswith(" ") else ""
    raise PromptError(
        f"the target {target!r} is {len(ids)} tokens, not one: {pieces}{space}. Give a "
        f"single-token target, or pass --first-token to score its first token {tokenizer.decode([ids[0]])!r} only."
    )


def parse_pairs(spec: str) -> list[tuple[int, int]]:
    """Parse ``"S:B,S:B"`` (source position, base position; negative counts from the end)."""
    pairs = []
    for item in spec.split(","):
        try:
            s, b = item.split(":")
            pairs.append((int(s), int(b)))
        except ValueError:
            raise PromptError(
                f"cannot read the position pair {item!r} in {spec!r}; write SOURCE:BASE pairs "
                "separated by commas, e.g. --pairs 3:3,9:8"
            ) from None
    return pairs


def align_positions(
    base_len: int, source_len: int, align: str | None = None, pairs: Sequence[tuple[int, int]] | None = None
) -> list[tuple[int, int]] | None:
    """(source, base) position pairs for prompts of these lengths, or None when they line up 1:1.

    Equal lengths need nothing. Different lengths need ``align``: ``"left"`` pairs position i with
    i, ``"right"`` pairs positions counted from the end, ``"last"`` pairs only the last positions;
    or explicit ``pairs``. Otherwise a :class:`vene.UnitLocationError` says how to choose.
    """
    if pairs is not None:
        out = []
        for s, b in pairs:
            s2, b2 = s + source_len if s < 0 else s, b + base_len if b < 0 else b
            if not (0 <= s2 < source_len and 0 <= b2 < base_len):
                raise UnitLocationError(
                    f"the position pair {s}:{b} is out of range: the source has {source_len} tokens "
                    f"and the base {base_len}."
                )
            out.append((s2, b2))
        if len({b for _, b in out}) != len(out):
            raise UnitLocationError("each base position may appear in one pair only.")
        return out
    if align is None:
        if base_len == source_len:
            return None
        raise UnitLocationError(
            f"the base prompt is {base_len} tokens and the source prompt {source_len}, so their "
            "positions do not line up. Say how they align: --align right (count from the end), "
            "--align left (from the start), --align last (the last positions only), or "
            "--pairs SOURCE:BASE,... ; or reword the prompts to the same number of tokens."
        )
    if align not in ALIGNMENTS:
        raise PromptError(f"unknown alignment {align!r}; choose one of {', '.join(ALIGNMENTS)}.")
    if align == "last":
        return [(source_len - 1, base_len - 1)]
    n = min(base_len, source_len)
    if align == "left":
        return [(i, i) for i in range(n)]
    return [(source_len - n + i, base_len - n + i) for i in range(n)]
