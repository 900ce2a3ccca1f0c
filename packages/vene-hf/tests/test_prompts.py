"""Prompts as patching inputs: token strings, subject positions, single-token targets, alignment."""

from __future__ import annotations

import pytest
from tiny_lm import build_tiny_lm
from transformers import AutoTokenizer

import vene
from vene_hf.prompts import (
    PromptError,
    align_positions,
    encode,
    parse_pairs,
    subject_positions,
    target_token_id,
)

PROMPT = "the big red house is located in the city of"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return AutoTokenizer.from_pretrained(build_tiny_lm(tmp_path_factory.mktemp("tiny")))


def test_encode_gives_ids_and_token_strings(tokenizer):
    enc = encode(tokenizer, PROMPT)
    assert enc.ids == tokenizer(PROMPT)["input_ids"]
    assert enc.tokens == PROMPT.split()
    assert enc.inputs["input_ids"].shape == (1, len(enc.ids))


def test_subject_positions_are_the_tokens_that_overlap_the_subject(tokenizer):
    assert subject_positions(tokenizer, PROMPT, "red house") == [2, 3]
    assert subject_positions(tokenizer, PROMPT, "house") == [3]
    # a partial word still marks the token it falls in
    assert subject_positions(tokenizer, PROMPT, "ed hou") == [2, 3]


def test_subject_positions_through_byte_level_offsets():
    # a byte-level tokenizer with no merges: one token per character, the space shown as "Ġ";
    # the space before the subject is not part of it, the one inside it is
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted({*"ĠTheEiffelTowris"}))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend)
    text = "The Eiffel Tower is"
    assert len(tok(text)["input_ids"]) == len(text)
    assert subject_positions(tok, text, "Eiffel Tower") == list(range(4, 16))


def test_subject_not_in_prompt_is_refused_with_a_hint(tokenizer):
    with pytest.raises(PromptError, match="does not occur in the prompt") as e:
        subject_positions(tokenizer, PROMPT, "Red House")
    assert "'red house'" in str(e.value)  # the capitalisation that does occur
    assert isinstance(e.value, vene.VeneError)
    with pytest.raises(PromptError, match="does not occur"):
        subject_positions(tokenizer, PROMPT, "Colosseum")


def test_single_token_target(tokenizer):
    assert target_token_id(tokenizer, " Paris") == tokenizer.convert_tokens_to_ids("Paris")


def test_multi_token_target_is_refused_unless_first_token(tokenizer):
    with pytest.raises(PromptError, match=r"2 tokens, not one: 'Paris', 'Rome'.*--first-token"):
        target_token_id(tokenizer, " Paris Rome")
    assert target_token_id(tokenizer, " Paris Rome", first_token=True) == tokenizer.convert_tokens_to_ids("Paris")
    with pytest.raises(PromptError, match="non-empty"):
        target_token_id(tokenizer, "")


def test_alignment():
    assert align_positions(5, 5) is None
    with pytest.raises(vene.UnitLocationError, match="--align right"):
        align_positions(5, 7)
    assert align_positions(3, 5, "right") == [(2, 0), (3, 1), (4, 2)]
    assert align_positions(3, 5, "left") == [(0, 0), (1, 1), (2, 2)]
    assert align_positions(3, 5, "last") == [(4, 2)]
    assert align_positions(3, 5, pairs=[(-1, -1), (0, 0)]) == [(4, 2), (0, 0)]
    with pytest.raises(vene.UnitLocationError, match="out of range"):
        align_positions(3, 5, pairs=[(5, 0)])
    with pytest.raises(vene.UnitLocationError, match="one pair only"):
        align_positions(3, 5, pairs=[(1, 0), (2, 0)])


def test_parse_pairs():
    assert parse_pairs("3:3,9:-1") == [(3, 3), (9, -1)]
    with pytest.raises(PromptError, match="SOURCE:BASE"):
        parse_pairs("3-3")
