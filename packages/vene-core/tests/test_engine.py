"""Every unit kind, mode, subspace and link case against a hand-written forward pass."""

from __future__ import annotations

import pytest
import torch
from conftest import capture, run_tiny

import vene as pv


def replaced(model, ids, where, fn):
    """Hand-written forward with ``fn(tensor)`` applied at ``where = (name, layer)``."""
    return run_tiny(model, ids, lambda n, layer, t: fn(t.clone()) if (n, layer) == where else t)


def test_pos_interchange_per_example_positions(tiny, ids, registry):
    base, src = ids
    im = pv.IntervenableModel({"layer": 0, "component": "block_output"}, tiny, registry=registry)
    pos_s, pos_b = [[1], [2], [4]], [[0], [3], [4]]
    _, out = im({"input_ids": base}, [{"input_ids": src}], unit_locations={"sources->base": ([pos_s], [pos_b])})
    s = capture(tiny, src)[("block", 0)]

    def fn(t):
        for i in range(3):
            t[i, pos_b[i][0]] = s[i, pos_s[i][0]]
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("block", 0), fn))


def test_dotted_path_equals_abstract_component(tiny, ids, registry):
    base, src = ids
    a = pv.IntervenableModel({"layer": 1, "component": "block_output"}, tiny, registry=registry)
    b = pv.IntervenableModel({"component": "layers[1].output"}, tiny, registry=registry)
    kw = dict(unit_locations={"sources->base": 2})
    torch.testing.assert_close(a({"input_ids": base}, [{"input_ids": src}], **kw)[1],
                               b({"input_ids": base}, [{"input_ids": src}], **kw)[1])


def test_several_units_per_example(tiny, ids, registry):
    base, src = ids
    im = pv.IntervenableModel(
        {"layer": 1, "component": "block_input", "max_number_of_units": 2}, tiny, registry=registry
    )
    locs = [[[0, 3], [1, 2], [4, 0]]]
    _, out = im({"input_ids": base}, [{"input_ids": src}], unit_locations={"sources->base": (locs, locs)})
    s = capture(tiny, src)[("block_in", 1)]

    def fn(t):
        for i, ps in enumerate(locs[0]):
            for p in ps:
                t[i, p] = s[i, p]
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("block_in", 1), fn))


def test_head_pos_unit(tiny, ids, registry):
    base, src = ids
    im = pv.IntervenableModel(
        {"layer": 1, "component": "head_attention_value_output", "unit": "h.pos"}, tiny, registry=registry
    )
    heads, pos = [[[0], [1], [1]]], [[[2], [0], [4]]]
    loc = [[heads[0], pos[0]]]
    _, out = im({"input_ids": base}, [{"input_ids": src}], unit_locations={"sources->base": (loc, loc)})
    s = capture(tiny, src)[("mix", 1)]

    def fn(t):
        for i in range(3):
            h, p = heads[0][i][0], pos[0][i][0]
            t[i, p, h * 4 : (h + 1) * 4] = s[i, p, h * 4 : (h + 1) * 4]
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("mix", 1), fn))


def test_head_unit_all_positions(tiny, ids, registry):
    base, src = ids
    im = pv.IntervenableModel(
        {"layer": 0, "component": "head_query_output", "unit": "h"}, tiny, registry=registry
    )
    heads = [[[1], [0], [1]]]
    _, out = im({"input_ids": base}, [{"input_ids": src}], unit_locations={"sources->base": (heads, heads)})
    s = capture(tiny, src)[("q", 0)]

    def fn(t):
        for i in range(3):
            h = heads[0][i][0]
            t[i, :, h * 4 : (h + 1) * 4] = s[i, :, h * 4 : (h + 1) * 4]
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("q", 0), fn))


def test_subspaces_and_partitions(tiny, ids, registry):
    base, src = ids
    s = capture(tiny, src)[("block", 0)]
    im = pv.IntervenableModel({"layer": 0, "component": "block_output"}, tiny, registry=registry)
    subs = [[[0, 5], [1], [7]]]
    _, out = im({"input_ids": base}, [{"input_ids": src}], unit_locations={"sources->base": 3}, subspaces=subs)

    def fn(t):
        for i, dims in enumerate(subs[0]):
            t[i, 3, dims] = s[i, 3, dims]
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("block", 0), fn))

    part = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "subspace_partition": [[0, 2], [2, 8]]}, tiny, registry=registry
    )
    _, out = part({"input_ids": base}, [{"input_ids": src}], unit_locations={"sources->base": 3}, subspaces=1)

    def fn2(t):
        t[:, 3, 2:8] = s[:, 3, 2:8]
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("block", 0), fn2))


def test_whole_tensor_constant_source_and_addition(tiny, ids, registry):
    base, _ = ids
    vec = torch.randn(8)
    im = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention},
        tiny, registry=registry,
    )
    _, out = im({"input_ids": base}, source_representations=vec)
    torch.testing.assert_close(out, replaced(tiny, base, ("block", 0), lambda t: t + vec))
    # the constant can also live on the representation
    im2 = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention_type": pv.SubtractionIntervention,
         "source_representation": vec},
        tiny, registry=registry,
    )
    _, out = im2({"input_ids": base}, unit_locations={"base": 1})

    def fn(t):
        t[:, 1] -= vec
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("block", 0), fn))


def test_zero_noise_and_function(tiny, ids, registry):
    base, src = ids
    zero = pv.IntervenableModel(
        {"layer": 1, "component": "attention_value_output", "intervention_type": pv.ZeroIntervention},
        tiny, registry=registry,
    )
    _, out = zero({"input_ids": base}, unit_locations={"base": [0, 2]})

    def fn(t):
        t[:, [0, 2]] = 0
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("mix", 1), fn))

    noise = pv.NoiseIntervention(noise_level=0.5, seed=7)
    im = pv.IntervenableModel({"layer": 0, "component": "block_input", "intervention": noise}, tiny, registry=registry)
    _, out = im({"input_ids": base}, unit_locations={"base": [[[1, 2]] * 3]})
    g = torch.Generator().manual_seed(7)
    eps = torch.randn((3, 2, 8), generator=g)

    def fn_noise(t):
        t[:, 1:3] += 0.5 * eps
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("block_in", 0), fn_noise))
    _, again = im({"input_ids": base}, unit_locations={"base": [[[1, 2]] * 3]})
    torch.testing.assert_close(out, again)  # a seed gives the same corruption every call

    half = lambda b, s: 0.5 * b + 0.5 * s  # noqa: E731
    fim = pv.IntervenableModel({"layer": 0, "component": "block_output", "intervention": half}, tiny, registry=registry)
    _, out = fim({"input_ids": base}, [{"input_ids": src}], unit_locations=2)
    s = capture(tiny, src)[("block", 0)]

    def fn_half(t):
        t[:, 2] = 0.5 * t[:, 2] + 0.5 * s[:, 2]
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("block", 0), fn_half))


def test_skip_intervention_skips_the_block(tiny, ids, registry):
    base, _ = ids
    im = pv.IntervenableModel(
        {"layer": 1, "component": "block_output", "intervention_type": pv.SkipIntervention}, tiny, registry=registry
    )
    _, out = im({"input_ids": base})
    block_in = capture(tiny, base)[("block_in", 1)]
    torch.testing.assert_close(out, tiny.head(block_in))


def test_collect_matches_hand_capture(tiny, ids, registry):
    base, _ = ids
    im = pv.IntervenableModel(
        [{"layer": 0, "component": "block_output", "intervention_type": pv.CollectIntervention},
         {"layer": 1, "component": "head_attention_value_output", "unit": "h.pos",
          "intervention_type": pv.CollectIntervention}],
        tiny, registry=registry,
    )
    loc = [[[1]] * 3, [[[0]] * 3, [[4]] * 3]]
    (orig, collected), out = im({"input_ids": base}, unit_locations={"base": loc}, output_original_output=True)
    seen = capture(tiny, base)
    torch.testing.assert_close(collected[0], seen[("block", 0)][:, [1]])
    torch.testing.assert_close(collected[1], seen[("mix", 1)][:, 4, :4].reshape(3, 1, 1, 4))
    torch.testing.assert_close(out, orig)
    torch.testing.assert_close(out, tiny(base))


def test_groups_one_source_each(tiny, ids, registry):
    base, src = ids
    src2 = torch.randint(0, 11, (3, 5), generator=torch.Generator().manual_seed(5))
    im = pv.IntervenableModel(
        [{"layer": 0, "component": "block_output", "group_key": 0},
         {"layer": 1, "component": "block_output", "group_key": 1}],
        tiny, registry=registry,
    )
    _, out = im({"input_ids": base}, [{"input_ids": src}, {"input_ids": src2}], unit_locations={"sources->base": 1})
    s0, s1 = capture(tiny, src)[("block", 0)], capture(tiny, src2)[("block", 1)]

    def edit(n, layer, t):
        if n == "block":
            t = t.clone()
            t[:, 1] = (s0 if layer == 0 else s1)[:, 1]
        return t

    torch.testing.assert_close(out, run_tiny(tiny, base, edit))
    # a None source skips its group
    _, out = im({"input_ids": base}, [None, {"input_ids": src2}], unit_locations={"sources->base": 1})

    def edit2(n, layer, t):
        if n == "block" and layer == 1:
            t = t.clone()
            t[:, 1] = s1[:, 1]
        return t

    torch.testing.assert_close(out, run_tiny(tiny, base, edit2))


def test_linked_interventions_share_one_object(tiny, ids, registry):
    base, _ = ids
    vec = torch.randn(8)
    im = pv.IntervenableModel(
        [{"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention,
          "intervention_link_key": "a"},
         {"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention,
          "intervention_link_key": "a"}],
        tiny, registry=registry,
    )
    keys = im.sorted_keys
    assert im.interventions[keys[0]] is im.interventions[keys[1]]
    _, out = im({"input_ids": base}, source_representations=vec, unit_locations={"base": 0})

    def fn(t):
        t[:, 0] += 2 * vec  # the second linked site sees the output of the first
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("block", 0), fn))


def test_serial_mode_chains_sources(tiny, ids, registry):
    base, src0 = ids
    src1 = torch.randint(0, 11, (3, 5), generator=torch.Generator().manual_seed(9))
    im = pv.IntervenableModel(
        pv.IntervenableConfig(
            representations=[{"layer": 0, "component": "block_output", "group_key": 0},
                             {"layer": 1, "component": "block_output", "group_key": 1}],
            mode="serial",
        ),
        tiny, registry=registry,
    )
    _, out = im(
        {"input_ids": base}, [{"input_ids": src0}, {"input_ids": src1}],
        unit_locations={"source_0->source_1": 2, "source_1->base": 3},
    )
    s0 = capture(tiny, src0)[("block", 0)]

    def into_src1(n, layer, t):
        if (n, layer) == ("block", 0):
            t = t.clone()
            t[:, 2] = s0[:, 2]
        return t

    seen = {}
    run_tiny(tiny, src1, lambda n, layer, t: seen.setdefault((n, layer), into_src1(n, layer, t)))
    s1 = seen[("block", 1)]

    def fn(t):
        t[:, 3] = s1[:, 3]
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("block", 1), fn))


def test_sources_batched_into_one_forward(tiny, ids, registry):
    base, src = ids
    calls = []
    handle = tiny.register_forward_pre_hook(
        lambda m, a, kw: calls.append(kw["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        im = pv.IntervenableModel(
            [{"layer": i, "component": "block_output", "group_key": i} for i in range(2)],
            tiny, registry=registry,
        )
        src2 = torch.randint(0, 11, (3, 5))
        im({"input_ids": base}, [{"input_ids": src}, {"input_ids": src2}], unit_locations=1)
    finally:
        handle.remove()
    assert calls == [6, 3]  # both sources in one batched run, then the base


def test_source_run_stops_after_last_site(tiny, ids, registry):
    base, src = ids
    reached = []
    handle = tiny.head.register_forward_hook(lambda m, a, o: reached.append(a[0].shape[0]))
    try:
        im = pv.IntervenableModel({"layer": 0, "component": "block_output"}, tiny, registry=registry)
        im({"input_ids": base}, [{"input_ids": src}], unit_locations=1)
    finally:
        handle.remove()
    assert reached == [3]  # the head ran for the base only


def test_return_dict_labels_and_use_of_original(tiny, ids, registry):
    base, src = ids
    im = pv.IntervenableModel({"layer": 0, "component": "block_output"}, tiny, registry=registry)
    labels = torch.randint(0, 11, (3, 5))
    res = im({"input_ids": base}, [{"input_ids": src}], unit_locations=1, labels=labels,
             output_original_output=True, return_dict=True)
    assert isinstance(res, pv.IntervenableModelOutput)
    logits, loss = res.intervened_outputs
    ref = replaced(tiny, base, ("block", 0), lambda t: torch.cat([t[:, :1], capture(tiny, src)[("block", 0)][:, 1:2], t[:, 2:]], 1))
    torch.testing.assert_close(logits, ref)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(ref.flatten(0, 1), labels.flatten()))
    torch.testing.assert_close(res.original_outputs[0], tiny(base))


def test_mlp_reference_model(registry):
    torch.manual_seed(0)
    _, _, mlp = pv.create_mlp_classifier(pv.MLPConfig(h_dim=6, n_layer=2, input_dim=4, num_classes=3))
    x, y = torch.randn(5, 4), torch.randn(5, 4)
    im = pv.IntervenableModel({"layer": 1, "component": "block_output"}, mlp)
    _, out = im({"inputs_embeds": x}, [{"inputs_embeds": y}], unit_locations={"sources->base": 0}, subspaces=[[0, 2]])
    hx = mlp.mlp.h[0](x)
    h1x, h1y = mlp.mlp.h[1](hx), mlp.mlp.h[1](mlp.mlp.h[0](y))
    h1x[:, [0, 2]] = h1y[:, [0, 2]]
    torch.testing.assert_close(out["logits"], mlp.score(h1x))


def test_gru_timestep_unit():
    torch.manual_seed(0)
    _, _, gru = pv.create_gru_classifier(pv.GRUConfig(h_dim=5, input_dim=3, n_layer=2))
    x, y = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    im = pv.IntervenableModel({"layer": 0, "component": "cell_output", "unit": "t"}, gru)
    src_t, base_t = [[[2], [3]]], [[[1], [0]]]
    _, out = im({"inputs_embeds": x}, [{"inputs_embeds": y}], unit_locations={"sources->base": (src_t, base_t)})

    def unroll(inp, edit=None):
        hs = [torch.zeros(inp.shape[0], 5) for _ in range(2)]
        states = []
        for t in range(inp.shape[1]):
            z = inp[:, t]
            for i, cell in enumerate(gru.gru.cells):
                hs[i] = cell.cell(z, hs[i])
                if edit is not None and i == 0:
                    hs[i] = edit(t, hs[i])
                z = hs[i]
            states.append(hs[0])
        return z, states

    _, src_states = unroll(y)

    def edit(t, h):
        h = h.clone()
        for b in range(2):
            if t == base_t[0][b][0]:
                h[b] = src_states[src_t[0][b][0]][b]
        return h

    last, _ = unroll(x, edit)
    torch.testing.assert_close(out["logits"], gru.score(last))


def test_intervention_params_get_gradients_inside_a_module(tiny, ids, registry):
    base, src = ids

    class Scale(pv.TrainableIntervention, pv.DistributedRepresentationIntervention):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.w = torch.nn.Parameter(torch.ones(self.embed_dim))

        def forward(self, base, source=None, subspaces=None, **kw):
            return base * self.w

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.im = pv.IntervenableModel(
                {"layer": 0, "component": "block_output", "intervention_type": Scale,
                 "max_number_of_units": 2}, tiny, registry=registry
            )

        def forward(self, ids):
            return self.im({"input_ids": ids}, unit_locations={"base": [1, 3]})[1].sum()

    w = Wrapper()
    iv = next(iter(w.im.interventions.values()))
    assert iv.w.shape == (16,)  # 2 units x width 8, concatenated
    w(base).backward()
    assert iv.w.grad is not None and iv.w.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.parameters())
    w.im.enable_model_gradients()
    w(base).backward()
    assert tiny.head.weight.grad is not None
    w.im.disable_model_gradients()
    assert not any(p.requires_grad for p in tiny.parameters())


def test_shorthand_is_not_sticky(tiny, ids, registry):
    base, src = ids
    im = pv.IntervenableModel({"layer": 0, "component": "block_output"}, tiny, registry=registry)
    im({"input_ids": base}, [{"input_ids": src}], unit_locations=1)
    _, whole = im({"input_ids": base}, [{"input_ids": src}])
    fresh = pv.IntervenableModel({"layer": 0, "component": "block_output"}, tiny, registry=registry)
    _, expected = fresh({"input_ids": base}, [{"input_ids": src}])
    torch.testing.assert_close(whole, expected)
    torch.testing.assert_close(whole, replaced(tiny, base, ("block", 0), lambda t: capture(tiny, src)[("block", 0)]))


@pytest.mark.parametrize(
    "form",
    [1, (1, 1), [1], {"sources->base": 1}, {"sources->base": (1, 1)},
     {"sources->base": ([[[1]] * 3], [[[1]] * 3])}, {"sources->base": ([[1]], [[1]])}],
)
def test_location_shorthands_agree(tiny, ids, registry, form):
    base, src = ids
    im = pv.IntervenableModel({"layer": 0, "component": "block_output"}, tiny, registry=registry)
    _, out = im({"input_ids": base}, [{"input_ids": src}], unit_locations=form)
    s = capture(tiny, src)[("block", 0)]

    def fn(t):
        t[:, 1] = s[:, 1]
        return t

    torch.testing.assert_close(out, replaced(tiny, base, ("block", 0), fn))


def test_serial_mode_without_sources_acts_on_the_base(tiny, ids, registry):
    base, _ = ids
    im = pv.IntervenableModel(
        pv.IntervenableConfig(
            representations=[{"layer": i, "component": "block_output", "group_key": i,
                              "intervention_type": pv.CollectIntervention} for i in range(2)],
            mode="serial",
        ),
        tiny, registry=registry,
    )
    (_, collected), _ = im({"input_ids": base}, unit_locations=None)
    seen = capture(tiny, base)
    torch.testing.assert_close(collected[0], seen[("block", 0)])
    torch.testing.assert_close(collected[1], seen[("block", 1)])


def test_module_called_twice_is_read_at_its_first_call(registry):
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 4)

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return self.lin(torch.tanh(self.lin(x)))

    model = Twice()
    x, y = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    im = pv.IntervenableModel({"component": "lin.output"}, model, registry=registry)
    _, out = im(x, [y], unit_locations={"sources->base": (0, 1)})
    first_source = lin(y)[:, 0]

    def first_call_patched(inp):
        h = lin(inp).clone()
        h[:, 1] = first_source
        return h

    # the write applies at every call of the shared module, the read comes from the first call
    h = first_call_patched(x)
    second = lin(torch.tanh(h)).clone()
    second[:, 1] = first_source
    torch.testing.assert_close(out, second)
