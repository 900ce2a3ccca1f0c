"""Where pyvene 0.1.8 and vene behave alike in the intervention layer, against hand-written forwards.

* A constant-source intervention (or a function) whose group's source is None is applied with
  ``source=None``, as pyvene does; an interchange with a None source is skipped.
* A dict given as ``subspaces`` reaches the intervention unchanged.
* ``as_adaptor=True`` interventions read the module's input as ``args``.
* A collection may return another width (an SAE encoder's latents); it leaves the model as it was.
* A distributed intervention with a one-unit basis given two positions acts on each position.
"""

from __future__ import annotations

import pytest
import torch
from conftest import capture, run_tiny

import vene as pv

# ---------------------------------------------------------------------------------------------
# (a) a None source for a constant-source intervention: applied, as in pyvene
# ---------------------------------------------------------------------------------------------


class AddPattern(pv.ConstantSourceIntervention):
    """pyvene-style corruption: adds a fixed pattern, reads no source."""

    def forward(self, base, source=None, subspaces=None, **kwargs):
        assert source is None
        return base + torch.linspace(-2.0, 2.0, base.shape[-1])


def test_constant_source_with_a_none_source_is_applied_beside_a_restore(tiny, ids, registry):
    """ROME-style: corrupt the embeddings of positions 0-2, restore block 1 at position 3 from
    the clean run. The result is neither the clean output nor the corrupted one."""
    base, _ = ids
    im = pv.IntervenableModel(
        [{"layer": 0, "component": "block_input", "intervention_type": AddPattern},
         {"layer": 1, "component": "block_output"}],
        tiny, registry=registry,
    )
    _, out = im(
        {"input_ids": base}, [None, {"input_ids": base}],
        unit_locations={"sources->base": ([None, [[3]] * 3], [[[0, 1, 2]] * 3, [[3]] * 3])},
    )
    clean = capture(tiny, base)[("block", 1)]
    pattern = torch.linspace(-2.0, 2.0, 8)

    def edit(name, layer, t):
        t = t.clone()
        if (name, layer) == ("block_in", 0):
            t[:, 0:3] += pattern
        if (name, layer) == ("block", 1):
            t[:, 3] = clean[:, 3]
        return t

    want = run_tiny(tiny, base, edit)
    torch.testing.assert_close(out, want)
    assert not torch.allclose(out, tiny(base))  # the corruption was applied


@pytest.mark.parametrize("kind", ["zero", "function"])
def test_sourceless_and_functions_apply_with_a_none_source(tiny, ids, registry, kind):
    base, src = ids
    first = (
        {"intervention_type": pv.ZeroIntervention} if kind == "zero"
        else {"intervention": lambda b, s: b * 0.5 if s is None else s}
    )
    im = pv.IntervenableModel(
        [{"layer": 0, "component": "block_output", **first}, {"layer": 1, "component": "block_output"}],
        tiny, registry=registry,
    )
    _, out = im({"input_ids": base}, [None, {"input_ids": src}], unit_locations={"sources->base": 2})
    s1 = capture(tiny, src)[("block", 1)]

    def edit(name, layer, t):
        t = t.clone()
        if (name, layer) == ("block", 0):
            t[:, 2] = 0.0 if kind == "zero" else t[:, 2] * 0.5
        if (name, layer) == ("block", 1):
            t[:, 2] = s1[:, 2]
        return t

    torch.testing.assert_close(out, run_tiny(tiny, base, edit))


def test_an_interchange_with_a_none_source_is_still_skipped(tiny, ids, registry):
    base, src = ids
    im = pv.IntervenableModel(
        [{"layer": 0, "component": "block_output", "group_key": 0},
         {"layer": 1, "component": "block_output", "intervention_type": pv.AdditionIntervention,
          "group_key": 1}],
        tiny, registry=registry,
    )
    _, out = im({"input_ids": base}, [{"input_ids": src}, None], unit_locations={"sources->base": 1})
    s0 = capture(tiny, src)[("block", 0)]

    def edit(name, layer, t):
        if (name, layer) == ("block", 0):
            t = t.clone()
            t[:, 1] = s0[:, 1]
        return t

    torch.testing.assert_close(out, run_tiny(tiny, base, edit))


# ---------------------------------------------------------------------------------------------
# (b) dict subspaces pass through
# ---------------------------------------------------------------------------------------------


class ScaledDims(pv.Intervention):
    """Reads its own subspace object: {"dims": [...], "scale": s}."""

    seen: list = []

    def forward(self, base, source=None, subspaces=None, **kwargs):
        ScaledDims.seen.append(subspaces)
        out = base.clone()
        out[..., subspaces["dims"]] = base[..., subspaces["dims"]] * subspaces["scale"]
        return out


@pytest.mark.parametrize("form", ["per_intervention", "for_all"])
def test_dict_subspaces_reach_the_intervention_unchanged(tiny, ids, registry, form):
    base, _ = ids
    spec = {"dims": [1, 4], "scale": -3.0}
    ScaledDims.seen = []
    im = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention": ScaledDims()}, tiny, registry=registry
    )
    _, out = im({"input_ids": base}, unit_locations={"base": 2},
                subspaces=[spec] if form == "per_intervention" else spec)
    assert ScaledDims.seen == [spec] and ScaledDims.seen[0] is spec

    def edit(name, layer, t):
        if (name, layer) == ("block", 0):
            t = t.clone()
            t[:, 2, [1, 4]] *= -3.0
        return t

    torch.testing.assert_close(out, run_tiny(tiny, base, edit))


# ---------------------------------------------------------------------------------------------
# (c) as_adaptor: the module's input as `args`
# ---------------------------------------------------------------------------------------------


class Adaptor(pv.Intervention):
    """pyvene adaptor style: output + W(input), the input read from kwargs["args"]."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        torch.manual_seed(3)
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, base, source=None, subspaces=None, **kwargs):
        return base + self.proj(kwargs["args"])


def test_adaptor_reads_the_module_input_as_args(tiny, ids, registry):
    base, _ = ids
    iv = Adaptor()
    im = pv.IntervenableModel(
        {"layer": 1, "component": "mlp_output", "intervention": iv}, tiny, registry=registry, as_adaptor=True
    )
    _, out = im({"input_ids": base}, unit_locations={"base": [1, 3]})
    # by hand: block 1's mlp output at positions 1 and 3 gets proj(mlp input) added
    x = tiny.embed(base)
    x = tiny.layers[0](x)
    layer = tiny.layers[1]
    x = x + layer.attn(x)
    m = layer.mlp(x)
    m = m.clone()
    with torch.no_grad():
        m[:, [1, 3]] = m[:, [1, 3]] + iv.proj(x[:, [1, 3]])
    want = tiny.head(x + m)
    torch.testing.assert_close(out, want)
    assert not torch.allclose(out, tiny(base))


# ---------------------------------------------------------------------------------------------
# (d) a collection of another width
# ---------------------------------------------------------------------------------------------


class EncoderCollect(pv.CollectIntervention):
    """An SAE-style encoder: collects relu(x W + b), 20 latents per position."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        torch.manual_seed(4)
        self.enc = torch.nn.Linear(8, 20)

    def forward(self, base, source=None, subspaces=None, **kwargs):
        return torch.relu(self.enc(base))


def test_a_collection_of_another_width_is_collected_with_its_width(tiny, ids, registry):
    base, _ = ids
    iv = EncoderCollect()
    im = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention": iv}, tiny, registry=registry
    )
    (_, collected), out = im({"input_ids": base}, unit_locations={"base": [0, 4]})
    h = capture(tiny, base)[("block", 0)]
    with torch.no_grad():
        want = torch.relu(iv.enc(h[:, [0, 4]]))
    assert collected[0].shape == (3, 2, 20)
    torch.testing.assert_close(collected[0], want)
    torch.testing.assert_close(out, tiny(base))  # the model's output is untouched


# ---------------------------------------------------------------------------------------------
# (e) a one-unit basis at two positions: each position in turn
# ---------------------------------------------------------------------------------------------


class FixedRotation(pv.DistributedRepresentationIntervention):
    """Interchange the first 3 coordinates of a fixed orthogonal basis R (``[embed_dim]²``)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        torch.manual_seed(6)
        q, _ = torch.linalg.qr(torch.randn(self.embed_dim, self.embed_dim))
        self.register_buffer("r", q)

    def forward(self, base, source=None, subspaces=None, **kwargs):
        mask = torch.zeros(self.embed_dim)
        mask[:3] = 1
        return base + (((source - base) @ self.r) * mask) @ self.r.T


def test_a_one_unit_rotation_at_two_positions_rotates_each_position(tiny, ids, registry):
    base, src = ids
    im = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention_type": FixedRotation,
         "max_number_of_units": 1},
        tiny, registry=registry,
    )
    iv = next(iter(im.interventions.values()))
    assert iv.r.shape == (8, 8)
    _, out = im({"input_ids": base}, [{"input_ids": src}], unit_locations={"sources->base": [1, 3]})
    s = capture(tiny, src)[("block", 0)]
    mask = torch.zeros(8)
    mask[:3] = 1

    def edit(name, layer, t):
        if (name, layer) == ("block", 0):
            t = t.clone()
            for p in (1, 3):
                t[:, p] = t[:, p] + (((s[:, p] - t[:, p]) @ iv.r) * mask) @ iv.r.T
        return t

    torch.testing.assert_close(out, run_tiny(tiny, base, edit))
    # two units in a two-unit basis are still concatenated (one basis over both)
    wide = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention_type": FixedRotation,
         "max_number_of_units": 2},
        tiny, registry=registry,
    )
    r = next(iter(wide.interventions.values())).r
    assert r.shape == (16, 16)
    _, out = wide({"input_ids": base}, [{"input_ids": src}], unit_locations={"sources->base": [1, 3]})
    mask16 = torch.zeros(16)
    mask16[:3] = 1

    def edit2(name, layer, t):
        if (name, layer) == ("block", 0):
            t = t.clone()
            b, sc = t[:, [1, 3]].reshape(3, 16), s[:, [1, 3]].reshape(3, 16)
            t[:, [1, 3]] = (b + (((sc - b) @ r) * mask16) @ r.T).view(3, 2, 8)
        return t

    torch.testing.assert_close(out, run_tiny(tiny, base, edit2))
