"""Head-level components of GPT-2 and Llama (grouped-query), against a hand-written attention.

For each head component, one head at one position (chosen per example, unit ``h.pos``) or one
head at every position (unit ``h``) is taken from the source run; the expected output is computed
by a hand-written attention forward with that activation replaced, patched into the model in
place of the attention module's output.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from conftest import (
    CASES,
    attention_input,
    gpt2_attention,
    llama_attention,
    model_of,
    run_with_attention_output,
    selected_families,
)

import vene as pv

LAYER = 1
FAMILIES = [f for f in ("gpt2", "llama") if f in selected_families()]
PATHS = {"gpt2": "transformer.h.1.attn", "llama": "model.layers.1.self_attn"}
EDITED = {  # component -> the hand-written attention's intermediate it names
    "head_query_output": "q",
    "head_key_output": "k",
    "head_value_output": "v",
    "head_attention_value_output": "ctx",
}


def hand_attention(family: str, model: Any, x: torch.Tensor, edit: Any) -> torch.Tensor:
    attn = model.get_submodule(PATHS[family])
    if family == "gpt2":
        return gpt2_attention(attn, x, edit)
    return llama_attention(attn, x, model.config, edit)


def heads_of(family: str, component: str, config: Any) -> int:
    if family == "llama" and component in ("head_key_output", "head_value_output"):
        return config.num_key_value_heads
    return config.num_attention_heads


def test_llama_case_uses_grouped_query_attention() -> None:
    config = model_of("llama").config
    assert config.num_key_value_heads < config.num_attention_heads


@pytest.mark.parametrize("unit", ["h.pos", "h"])
@pytest.mark.parametrize("component", list(EDITED))
@pytest.mark.parametrize("family", FAMILIES)
def test_head_interchange_matches_hand_written_attention(
    family: str, component: str, unit: str, registry: Any
) -> None:
    model = model_of(family)
    base, source = CASES[family].inputs(0), CASES[family].inputs(1)
    n = heads_of(family, component, model.config)
    heads = [[n - 1], [0]]  # a different head per example, within range for key/value heads
    src_pos, base_pos = [[3], [1]], [[2], [4]]
    im = pv.IntervenableModel(
        {"layer": LAYER, "component": component, "unit": unit}, model, registry=registry
    )
    if unit == "h.pos":
        locs = ([[heads, src_pos]], [[heads, base_pos]])
    else:
        locs = ([heads], [heads])
    _, out = im(base, [source], unit_locations={"sources->base": locs})

    # the source's activation, from the hand-written attention over the source's attention input
    captured: dict[str, torch.Tensor] = {}

    def keep(name: str, t: torch.Tensor) -> torch.Tensor:
        captured.setdefault(name, t)
        return t

    with torch.no_grad():
        hand_attention(family, model, attention_input(model, PATHS[family], source), keep)
    src = captured[EDITED[component]]

    def replace(name: str, t: torch.Tensor) -> torch.Tensor:
        if name != EDITED[component]:
            return t
        t = t.clone()
        for b in range(2):
            h = heads[b][0]
            if unit == "h.pos":
                t[b, base_pos[b][0], h] = src[b, src_pos[b][0], h]
            else:
                t[b, :, h] = src[b, :, h]
        return t

    with torch.no_grad():
        x = attention_input(model, PATHS[family], base)
        value = hand_attention(family, model, x, replace)
    want = run_with_attention_output(model, PATHS[family], base, value).logits
    torch.testing.assert_close(out.logits, want, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(want, model(**base).logits, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_hand_written_attention_matches_the_model(family: str) -> None:
    """The reference itself: unedited, it reproduces the model's attention output."""
    model = model_of(family)
    inputs = CASES[family].inputs(0)
    store: dict[str, torch.Tensor] = {}
    module = model.get_submodule(PATHS[family])

    def keep(m: Any, a: tuple, o: Any) -> None:
        store.setdefault("y", o[0])

    handle = module.register_forward_hook(keep)
    try:
        with torch.no_grad():
            model(**inputs)
            mine = hand_attention(
                family, model, attention_input(model, PATHS[family], inputs), lambda n, t: t
            )
    finally:
        handle.remove()
    torch.testing.assert_close(mine, store["y"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_head_widths_and_counts(family: str, registry: Any) -> None:
    config = model_of(family).config
    for component in EDITED:
        im = pv.IntervenableModel(
            {"layer": LAYER, "component": component, "unit": "h.pos"}, model_of(family), registry=registry
        )
        site = im._slots[0].site
        assert site.heads == heads_of(family, component, config)
        assert site.dim == config.hidden_size // config.num_attention_heads


def test_head_out_of_range_is_a_clear_error(registry: Any) -> None:
    model = model_of("llama")
    im = pv.IntervenableModel(
        {"layer": LAYER, "component": "head_key_output", "unit": "h.pos"}, model, registry=registry
    )
    inputs = CASES["llama"].inputs(0)
    with pytest.raises(pv.UnitLocationError, match="head 2 is out of range"):
        im(
            inputs,
            [CASES["llama"].inputs(1)],
            unit_locations={"sources->base": ([[[[2], [0]], [[1], [1]]]], [[[[2], [0]], [[1], [1]]]])},
        )
