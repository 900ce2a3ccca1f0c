"""Generation with interventions, checked against plain forward hooks and hand-written greedy loops.

The models are tiny, randomly initialised GPT-2 and Llama models built from configs, in float64 so
that greedy decoding never hinges on a rounding difference. Every expectation is computed without
vene: a plain ``register_forward_hook`` that edits the block output, driven either by
``model.generate`` or by a greedy loop that recomputes the whole sequence at every step.
"""

from __future__ import annotations

import pytest
import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)

import vene as pv

VOCAB = 97
WIDTH = 32
NEW = 6
GREEDY = {"max_new_tokens": NEW, "do_sample": False, "pad_token_id": 0}


def _gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    # a wide initialisation keeps the random model from repeating one token forever
    cfg = GPT2Config(
        n_layer=2, n_embd=WIDTH, n_head=4, vocab_size=VOCAB, n_positions=64, bos_token_id=0,
        eos_token_id=None, pad_token_id=0, initializer_range=0.2,
    )
    return GPT2LMHeadModel(cfg).double().eval()


def _llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=WIDTH, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64, bos_token_id=0,
        eos_token_id=None, pad_token_id=0,
    )
    return LlamaForCausalLM(cfg).double().eval()


# name -> (builder, dotted path of block 1, that block as a module)
ARCHS = {
    "gpt2": (_gpt2, "transformer.h[1].output", lambda m: m.transformer.h[1]),
    "llama": (_llama, "model.layers[1].output", lambda m: m.model.layers[1]),
}


@pytest.fixture(scope="module", params=sorted(ARCHS))
def arch(request):
    build, path, block = ARCHS[request.param]
    model = build()
    return request.param, model, path, block(model)


@pytest.fixture
def prompt() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randint(1, VOCAB, (2, 5))


def _vector(seed: int = 2, scale: float = 0.5) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(WIDTH, dtype=torch.float64) * scale


# ---------------------------------------------------------------------------------------------
# independent machinery: plain hooks
# ---------------------------------------------------------------------------------------------


def _edit_hook(edit):
    """A forward hook applying ``edit`` to a block's hidden states (tensor or tuple output)."""

    def hook(module, args, output):
        if isinstance(output, tuple):
            return (edit(output[0]),) + output[1:]
        return edit(output)

    return hook


def _add_at(vector, positions=None):
    """Edit: add ``vector`` at the given absolute positions (all positions when None)."""

    def edit(h):
        if positions is None:
            return h + vector
        h = h.clone()
        for p in positions:
            if p < h.shape[1]:
                h[:, p] = h[:, p] + vector
        return h

    return edit


def _greedy(model, block, ids, edit=None, n=NEW):
    """Greedy decoding by hand: the whole sequence is recomputed at every step, no cache."""
    handle = block.register_forward_hook(_edit_hook(edit)) if edit is not None else None
    try:
        seq = ids
        with torch.no_grad():
            for _ in range(n):
                logits = model(input_ids=seq, use_cache=False).logits
                seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], 1)
    finally:
        if handle is not None:
            handle.remove()
    return seq


def _generate_with_hook(model, block, edit, **inputs):
    handle = block.register_forward_hook(_edit_hook(edit))
    try:
        return model.generate(**inputs, **GREEDY)
    finally:
        handle.remove()


def _addition(model, path, vector=None, **rep):
    return pv.IntervenableModel(
        {"component": path, "intervention_type": pv.AdditionIntervention,
         "source_representation": _vector() if vector is None else vector, **rep},
        model,
    )


# ---------------------------------------------------------------------------------------------
# where interventions apply, with and without the KV cache
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_cache", [True, False])
def test_steering_every_step_matches_a_plain_hook(arch, prompt, use_cache):
    _, model, path, block = arch
    v = _vector()
    im = _addition(model, path, v)
    _, got = im.generate({"input_ids": prompt}, unit_locations=None, intervene_on_prompt=True,
                         use_cache=use_cache, **GREEDY)
    expected = _generate_with_hook(model, block, _add_at(v), input_ids=prompt)
    assert torch.equal(got, expected)
    assert torch.equal(got, _greedy(model, block, prompt, _add_at(v)))
    assert not torch.equal(got, model.generate(input_ids=prompt, **GREEDY))  # it steers


@pytest.mark.parametrize("use_cache", [True, False])
def test_prompt_positions_only(arch, prompt, use_cache):
    _, model, path, block = arch
    v = _vector(scale=3.0)
    im = _addition(model, path, v)
    _, got = im.generate({"input_ids": prompt}, unit_locations={"base": [1, 4]},
                         intervene_on_prompt=True, use_cache=use_cache, **GREEDY)
    expected = _greedy(model, block, prompt, _add_at(v, [1, 4]))
    assert torch.equal(got, expected)
    assert not torch.equal(got, _greedy(model, block, prompt))


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("steps", [[2, 4], "all", 1])
def test_chosen_generated_steps(arch, prompt, use_cache, steps):
    _, model, path, block = arch
    v = _vector(scale=3.0)
    p = prompt.shape[1]
    chosen = range(1, NEW + 1) if steps == "all" else ([steps] if isinstance(steps, int) else steps)
    # step k is the k-th generated token, at absolute position prompt_len + k - 1
    expected = _greedy(model, block, prompt, _add_at(v, [p + k - 1 for k in chosen]))
    im = _addition(model, path, v)
    _, got = im.generate({"input_ids": prompt}, unit_locations=None, intervene_on_steps=steps,
                         use_cache=use_cache, **GREEDY)
    assert torch.equal(got, expected)
    # prompt and steps together
    expected = _greedy(model, block, prompt, _add_at(v, [0] + [p + k - 1 for k in chosen]))
    _, got = im.generate({"input_ids": prompt}, unit_locations={"base": 0}, intervene_on_prompt=True,
                         intervene_on_steps=steps, use_cache=use_cache, **GREEDY)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("use_cache", [True, False])
def test_default_without_prompt_intervenes_every_generated_token(arch, prompt, use_cache):
    _, model, path, block = arch
    v = _vector(scale=3.0)
    p = prompt.shape[1]
    expected = _greedy(model, block, prompt, _add_at(v, range(p, p + NEW)))
    _, got = _addition(model, path, v).generate({"input_ids": prompt}, use_cache=use_cache, **GREEDY)
    assert torch.equal(got, expected)


def test_cache_and_no_cache_agree_for_an_interchange_from_a_source(arch, prompt):
    _, model, path, block = arch
    torch.manual_seed(3)
    source = torch.randint(1, VOCAB, prompt.shape)
    im = pv.IntervenableModel({"component": path}, model)  # VanillaIntervention
    kwargs = {"unit_locations": {"sources->base": ([[[3], [0]]], [[[4], [4]]])}, "intervene_on_prompt": True}
    _, cached = im.generate({"input_ids": prompt}, [{"input_ids": source}], **kwargs, **GREEDY)
    _, recomputed = im.generate({"input_ids": prompt}, [{"input_ids": source}], use_cache=False,
                                **kwargs, **GREEDY)
    assert torch.equal(cached, recomputed)
    # expectation: read the source's block output, then write it at position 4 by hand
    seen = []
    handle = block.register_forward_hook(_edit_hook(lambda h: seen.append(h) or h))
    with torch.no_grad():
        model(input_ids=source)
    handle.remove()
    src = seen[0][torch.arange(2), torch.tensor([3, 0])]  # [batch, width]

    def put(h):
        h = h.clone()
        h[:, 4] = src
        return h

    assert torch.equal(cached, _greedy(model, block, prompt, put))


def test_beams_follow_the_prompt_intervention(arch, prompt):
    _, model, path, block = arch
    v = _vector(scale=3.0)
    im = _addition(model, path, v)
    beams = {"num_beams": 2, "num_return_sequences": 2, "max_new_tokens": 4, "do_sample": False,
             "pad_token_id": 0}
    _, cached = im.generate({"input_ids": prompt}, unit_locations={"base": 4}, intervene_on_prompt=True,
                            **beams)
    _, recomputed = im.generate({"input_ids": prompt}, unit_locations={"base": 4},
                                intervene_on_prompt=True, use_cache=False, **beams)
    assert cached.shape == (4, prompt.shape[1] + 4)
    assert torch.equal(cached, recomputed)


def test_beams_over_a_batch_take_each_examples_own_source(arch, prompt):
    # beam search keeps num_beams rows per example (rows i*k .. i*k+k-1 are example i): each row
    # must be written from its own example's source (pyvene 0.1.8 fails here with a shape error)
    _, model, path, block = arch
    torch.manual_seed(5)
    source = torch.randint(1, VOCAB, prompt.shape)
    im = pv.IntervenableModel({"component": path}, model)  # VanillaIntervention
    beams = {"num_beams": 3, "num_return_sequences": 2, "max_new_tokens": 4, "do_sample": False,
             "pad_token_id": 0, "use_cache": False}
    _, ours = im.generate({"input_ids": prompt}, [{"input_ids": source}],
                          unit_locations={"sources->base": (4, 4)}, intervene_on_prompt=True, **beams)
    # expectation: the source's block output at position 4, repeated per beam, written by a plain hook
    seen = []
    handle = block.register_forward_hook(_edit_hook(lambda h: seen.append(h) or h))
    with torch.no_grad():
        model(input_ids=source)
    handle.remove()
    src = seen[0][:, 4].repeat_interleave(3, dim=0)  # [batch * beams, width]

    def put(h):
        h = h.clone()
        h[:, 4] = src
        return h

    handle = block.register_forward_hook(_edit_hook(put))
    try:
        expected = model.generate(input_ids=prompt, **beams)
    finally:
        handle.remove()
    assert ours.shape == (4, prompt.shape[1] + 4)
    assert torch.equal(ours, expected)
    assert not torch.equal(ours, model.generate(input_ids=prompt, **beams))  # the write mattered


# ---------------------------------------------------------------------------------------------
# left padding
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_cache", [True, False])
def test_left_padded_batch_matches_unbatched_runs(arch, use_cache):
    _, model, path, block = arch
    torch.manual_seed(4)
    a, b = torch.randint(1, VOCAB, (1, 5)), torch.randint(1, VOCAB, (1, 3))
    ids = torch.cat([a, torch.cat([torch.zeros(1, 2, dtype=torch.long), b], 1)], 0)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    v = _vector(scale=3.0)
    im = _addition(model, path, v)
    base = {"input_ids": ids, "attention_mask": mask}
    # the last prompt token: padded position 4 in both rows; unbatched 4 and 2
    _, got = im.generate(base, unit_locations={"base": [[[4], [4]]]}, intervene_on_prompt=True,
                         use_cache=use_cache, **GREEDY)
    assert torch.equal(got[0], _greedy(model, block, a, _add_at(v, [4]))[0])
    assert torch.equal(got[1, 2:], _greedy(model, block, b, _add_at(v, [2]))[0])
    # steering everywhere, and chosen generated steps
    _, got = im.generate(base, unit_locations=None, intervene_on_prompt=True, use_cache=use_cache,
                         **GREEDY)
    assert torch.equal(got[0], _greedy(model, block, a, _add_at(v))[0])
    assert torch.equal(got[1, 2:], _greedy(model, block, b, _add_at(v))[0])
    _, got = im.generate(base, unit_locations=None, intervene_on_steps=[1, 3], use_cache=use_cache,
                         **GREEDY)
    assert torch.equal(got[0], _greedy(model, block, a, _add_at(v, [5, 7]))[0])
    assert torch.equal(got[1, 2:], _greedy(model, block, b, _add_at(v, [3, 5]))[0])


# ---------------------------------------------------------------------------------------------
# collecting during generation
# ---------------------------------------------------------------------------------------------


def _plain_capture(model, block, **inputs):
    seen = []
    handle = block.register_forward_hook(_edit_hook(lambda h: seen.append(h.detach().clone()) or h))
    try:
        out = model.generate(**inputs, **GREEDY)
    finally:
        handle.remove()
    return out, seen


def test_collect_returns_one_activation_per_forward_call(arch, prompt):
    _, model, path, block = arch
    expected_ids, seen = _plain_capture(model, block, input_ids=prompt)
    im = pv.IntervenableModel({"component": path, "intervention_type": pv.CollectIntervention}, model)
    (original, collected), ids = im.generate({"input_ids": prompt}, unit_locations=None,
                                             intervene_on_prompt=True, **GREEDY)
    assert original is None
    assert torch.equal(ids, expected_ids)
    assert len(collected) == len(seen) == NEW  # the last token is never fed back
    assert collected[0].shape == (2, prompt.shape[1], WIDTH)
    for got, want in zip(collected, seen):
        assert torch.equal(got, want)
    # one position of the prompt, then every generated token
    (_, collected), _ = im.generate({"input_ids": prompt}, unit_locations={"base": 4},
                                    intervene_on_prompt=True, intervene_on_steps="all", **GREEDY)
    assert len(collected) == NEW
    assert torch.equal(collected[0], seen[0][:, 4:5])
    for got, want in zip(collected[1:], seen[1:]):
        assert torch.equal(got, want)
    # generated tokens only (the default without the prompt)
    (_, collected), _ = im.generate({"input_ids": prompt}, **GREEDY)
    assert len(collected) == NEW - 1
    for got, want in zip(collected, seen[1:]):
        assert torch.equal(got, want)


def test_output_original_output_is_the_plain_generation(arch, prompt):
    _, model, path, _ = arch
    original, steered = _addition(model, path).generate(
        {"input_ids": prompt}, unit_locations=None, intervene_on_prompt=True,
        output_original_output=True, **GREEDY,
    )
    assert torch.equal(original, model.generate(input_ids=prompt, **GREEDY))
    assert not torch.equal(original, steered)


# ---------------------------------------------------------------------------------------------
# the steering recipe, saved and loaded
# ---------------------------------------------------------------------------------------------


def test_steering_vector_round_trips_through_save_and_load(arch, prompt, tmp_path):
    _, model, path, block = arch
    v = _vector(seed=5)
    im = _addition(model, path, v)
    _, steered = im.generate({"input_ids": prompt}, unit_locations=None, intervene_on_prompt=True,
                             **GREEDY)
    assert torch.equal(steered, _generate_with_hook(model, block, _add_at(v), input_ids=prompt))
    assert not torch.equal(steered, model.generate(input_ids=prompt, **GREEDY))
    im.save(str(tmp_path))
    loaded = pv.IntervenableModel.load(str(tmp_path), model)
    assert isinstance(next(iter(loaded.interventions.values())), pv.AdditionIntervention)
    _, again = loaded.generate({"input_ids": prompt}, unit_locations=None, intervene_on_prompt=True,
                               **GREEDY)
    assert torch.equal(again, steered)


def test_generate_leaves_no_hooks_behind(arch, prompt):
    _, model, path, block = arch
    before = [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]
    _addition(model, path).generate({"input_ids": prompt}, unit_locations=None,
                                    intervene_on_prompt=True, **GREEDY)
    with pytest.raises(pv.UnitLocationError):
        _addition(model, path).generate({"input_ids": prompt}, unit_locations={"base": 50},
                                        intervene_on_prompt=True, **GREEDY)
    assert [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()] == before


def test_an_abstract_component_steers_like_its_dotted_path(arch, prompt):
    name, model, path, block = arch
    v = _vector()
    im = pv.IntervenableModel(
        {"layer": 1, "component": "block_output", "intervention_type": pv.AdditionIntervention,
         "source_representation": v},
        model,
    )
    assert im.representations[im.sorted_keys[0]].module == _addition(model, path).representations[
        _addition(model, path).sorted_keys[0]
    ].module
    _, got = im.generate({"input_ids": prompt}, unit_locations=None, intervene_on_prompt=True, **GREEDY)
    assert torch.equal(got, _generate_with_hook(model, block, _add_at(v), input_ids=prompt))


# ---------------------------------------------------------------------------------------------
# an encoder-decoder model
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def t5() -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    # a large initialisation keeps the random model from emitting the start token forever
    cfg = T5Config(vocab_size=VOCAB, d_model=WIDTH, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=None,
                   initializer_factor=10.0)
    return T5ForConditionalGeneration(cfg).double().eval()


def _greedy_seq2seq(model, block, ids, edit, n=NEW):
    """Greedy decoding by hand for an encoder-decoder: everything recomputed at every step."""
    handle = block.register_forward_hook(_edit_hook(edit))
    try:
        seq = torch.zeros(ids.shape[0], 1, dtype=torch.long)  # the decoder start token
        with torch.no_grad():
            for _ in range(n):
                logits = model(input_ids=ids, decoder_input_ids=seq, use_cache=False).logits
                seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], 1)
    finally:
        handle.remove()
    return seq


@pytest.mark.parametrize("use_cache", [True, False])
def test_encoder_decoder_prompt_and_decoder_steps(t5, prompt, use_cache):
    v = _vector(scale=2000.0)
    plain = t5.generate(input_ids=prompt, **GREEDY)
    # the encoder's prompt positions
    enc = _addition(t5, "encoder.block[1].output", v)
    _, got = enc.generate({"input_ids": prompt}, unit_locations={"base": 2}, intervene_on_prompt=True,
                          use_cache=use_cache, **GREEDY)
    assert torch.equal(got, _greedy_seq2seq(t5, t5.encoder.block[1], prompt, _add_at(v, [2])))
    assert not torch.equal(got, plain)
    # generated decoder tokens: the decoder reads the start token first, so step k sits at k
    dec = _addition(t5, "decoder.block[1].output", v)
    _, got = dec.generate({"input_ids": prompt}, unit_locations=None, intervene_on_steps=[1, 3],
                          use_cache=use_cache, **GREEDY)
    assert torch.equal(got, _greedy_seq2seq(t5, t5.decoder.block[1], prompt, _add_at(v, [1, 3])))
    assert not torch.equal(got, plain)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def test_bad_generation_arguments_say_how_to_fix_them(arch, prompt):
    _, model, path, _ = arch
    im = _addition(model, path)
    with pytest.raises(pv.ConfigError, match="numbered from 1"):
        im.generate({"input_ids": prompt}, intervene_on_steps=[0, 2], **GREEDY)
    with pytest.raises(pv.ConfigError, match="intervene_on_steps"):
        im.generate({"input_ids": prompt}, intervene_on_steps="some", **GREEDY)
    with pytest.raises(pv.ConfigError, match="intervene_on_prompt=True"):
        im.generate({"input_ids": prompt}, unit_locations={"base": 3}, **GREEDY)


def test_a_model_without_generate_is_refused():
    _, _, mlp = pv.create_mlp_classifier(pv.MLPConfig(h_dim=8, n_layer=2))
    im = pv.IntervenableModel({"layer": 0, "component": "block_output"}, mlp)
    with pytest.raises(pv.ConfigError, match="generate"):
        im.generate({"inputs_embeds": torch.randn(2, 8)})
