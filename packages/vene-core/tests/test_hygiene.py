"""After any call the model is exactly as before: hooks, mode, gradients; others' hooks fire."""

from __future__ import annotations

import pytest
import torch

import vene as pv


def hook_counts(model):
    return {
        name: (len(m._forward_hooks), len(m._forward_pre_hooks))
        for name, m in model.named_modules()
    }


def test_user_hooks_keep_firing_and_survive(tiny, ids, registry):
    base, src = ids
    fired = []
    h1 = tiny.layers[0].register_forward_hook(lambda m, a, o: fired.append("mine"))
    before = hook_counts(tiny)
    im = pv.IntervenableModel({"layer": 0, "component": "block_output"}, tiny, registry=registry)
    im({"input_ids": base}, [{"input_ids": src}], unit_locations=1)
    assert hook_counts(tiny) == before
    assert fired == ["mine", "mine"]  # the source run and the base run
    h1.remove()


class Boom(pv.Intervention):
    def forward(self, base, source=None, subspaces=None, **kw):
        raise RuntimeError("boom")


def test_hooks_removed_when_an_intervention_raises(tiny, ids, registry):
    base, src = ids
    before = hook_counts(tiny)
    im = pv.IntervenableModel({"layer": 1, "component": "block_output", "intervention": Boom()}, tiny, registry=registry)
    with pytest.raises(RuntimeError, match="boom"):
        im({"input_ids": base}, [{"input_ids": src}], unit_locations=1)
    assert hook_counts(tiny) == before


def test_hooks_removed_when_the_model_raises(tiny, ids, registry):
    base, src = ids
    before = hook_counts(tiny)
    im = pv.IntervenableModel({"layer": 0, "component": "block_output"}, tiny, registry=registry)
    with pytest.raises(IndexError):
        im({"input_ids": base + 100}, [{"input_ids": src}], unit_locations=1)  # bad token ids
    assert hook_counts(tiny) == before
    _, out = im({"input_ids": base}, [{"input_ids": src}], unit_locations=1)  # still works


def test_mode_and_grads_unchanged_by_calls(tiny, ids, registry):
    base, src = ids
    im = pv.IntervenableModel({"layer": 0, "component": "block_output"}, tiny, registry=registry)
    assert not tiny.training and not any(p.requires_grad for p in tiny.parameters())
    im.enable_model_gradients()
    flags = [p.requires_grad for p in tiny.parameters()]
    im({"input_ids": base}, [{"input_ids": src}], unit_locations=1)
    assert [p.requires_grad for p in tiny.parameters()] == flags
    assert not tiny.training
    im.train()  # interventions train; the frozen-or-not model follows only with its gradients on
    assert tiny.training
    im.disable_model_gradients()
    im.eval()
    im.train()
    assert not tiny.training


def test_plain_call_when_nothing_to_intervene(tiny, ids, registry):
    base, _ = ids
    im = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention},
        tiny, registry=registry,
    )
    _, out = im({"input_ids": base}, [None])  # the only group is skipped
    torch.testing.assert_close(out, tiny(base))
