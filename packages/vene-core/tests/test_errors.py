"""Bad input gets a vene error that says what was wrong and how to fix it."""

from __future__ import annotations

import pytest
import torch

import vene as pv


def make(tiny, registry, rep=None, **kw):
    rep = rep or {"layer": 0, "component": "block_output"}
    return pv.IntervenableModel(rep, tiny, registry=registry, **kw)


def test_unknown_component_suggests_close_names(tiny, registry):
    with pytest.raises(pv.SiteResolutionError, match="block_output"):
        make(tiny, registry, {"layer": 0, "component": "blok_output"})


def test_unknown_module_path_suggests_close_names(tiny, registry):
    with pytest.raises(pv.SiteResolutionError, match=r"layers\.0\.mlp"):
        make(tiny, registry, {"component": "layers[0].mpl.output"})


def test_layer_out_of_range(tiny, registry):
    with pytest.raises(pv.SiteResolutionError, match="2 layers"):
        make(tiny, registry, {"layer": 5, "component": "block_output"})


def test_abstract_component_on_unknown_model_names_the_way_out():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3))
    with pytest.raises(pv.SiteResolutionError, match="dotted path"):
        pv.IntervenableModel({"component": "mlp_output"}, model)


def test_location_out_of_range(tiny, ids, registry):
    base, src = ids
    with pytest.raises(pv.UnitLocationError, match="position 9 is out of range.*5 positions"):
        make(tiny, registry)({"input_ids": base}, [{"input_ids": src}], unit_locations=9)


def test_head_out_of_range(tiny, ids, registry):
    base, src = ids
    im = make(tiny, registry, {"layer": 0, "component": "head_query_output", "unit": "h"})
    with pytest.raises(pv.UnitLocationError, match="head 3"):
        im({"input_ids": base}, [{"input_ids": src}], unit_locations=3)


@pytest.mark.parametrize(
    "locs, match",
    [
        ({"sources->base": ([[[1]], [[2]]], [[[1]], [[2]]])}, "2 entries but there are 1"),
        ({"sources->base": ([[[1], [2]]], [[[1], [2]]])}, "2 examples"),
        ({"base": [[["x"]]]}, "list of"),
        ({"nowhere": 1}, "keys"),
        (-1, "negative"),
    ],
)
def test_wrong_nesting(tiny, ids, registry, locs, match):
    base, src = ids
    with pytest.raises(pv.VeneError, match=match):
        make(tiny, registry)({"input_ids": base}, [{"input_ids": src}], unit_locations=locs)


def test_h_pos_needs_a_pair(tiny, ids, registry):
    base, src = ids
    im = make(tiny, registry, {"layer": 0, "component": "head_query_output", "unit": "h.pos"})
    with pytest.raises(pv.UnitLocationError, match=r"\[heads, positions\]"):
        im({"input_ids": base}, [{"input_ids": src}], unit_locations={"sources->base": ([1], [1])})


def test_head_unit_on_a_component_without_heads(tiny, registry):
    with pytest.raises(pv.ConfigError, match="head component"):
        make(tiny, registry, {"layer": 0, "component": "block_output", "unit": "h"})


def test_batch_size_mismatch(tiny, ids, registry):
    base, src = ids
    with pytest.raises(pv.BatchSizeError, match="batch size 2 but the base has 3"):
        make(tiny, registry)({"input_ids": base}, [{"input_ids": src[:2]}], unit_locations=1)


def test_wrong_number_of_sources(tiny, ids, registry):
    base, src = ids
    im = make(tiny, registry, [{"layer": i, "component": "block_output"} for i in range(2)] + [{"layer": 0, "component": "block_input"}])
    with pytest.raises(pv.ConfigError, match="2 sources for 3 intervention groups"):
        im({"input_ids": base}, [{"input_ids": src}, {"input_ids": src}], unit_locations=1)


def test_subspace_out_of_range(tiny, ids, registry):
    base, src = ids
    with pytest.raises(pv.SubspaceError, match="subspace index 8 is out of range.*width 8"):
        make(tiny, registry)({"input_ids": base}, [{"input_ids": src}], unit_locations=1, subspaces=[8])


def test_subspace_partition_out_of_range(tiny, ids, registry):
    base, src = ids
    im = make(tiny, registry, {"layer": 0, "component": "block_output", "subspace_partition": [[0, 4], [4, 8]]})
    with pytest.raises(pv.SubspaceError, match="names no partition"):
        im({"input_ids": base}, [{"input_ids": src}], unit_locations=1, subspaces=2)


def test_both_intervention_and_type():
    with pytest.raises(pv.ConfigError, match="both `intervention` and `intervention_type`"):
        pv.RepresentationConfig(0, "block_output", intervention=pv.ZeroIntervention(),
                                intervention_type=pv.ZeroIntervention)


def test_unknown_representation_field():
    with pytest.raises(pv.ConfigError, match="did you mean|Did you mean"):
        pv.RepresentationConfig.coerce({"layer": 0, "componet": "block_output"})


def test_unknown_unit_and_mode():
    with pytest.raises(pv.ConfigError, match="unknown unit"):
        pv.RepresentationConfig(0, "block_output", "tokens")
    with pytest.raises(pv.ConfigError, match="parallel"):
        pv.IntervenableConfig(representations=[{}], mode="sideways")


def test_missing_source_is_explained(tiny, ids, registry):
    base, _ = ids
    with pytest.raises(pv.ConfigError, match="needs a source"):
        make(tiny, registry)({"input_ids": base}, unit_locations={"base": 1})


def test_plugin_name_without_the_plugin(registry):
    with pytest.raises(pv.MissingPluginError, match="pip install vene-train"):
        registry.intervention_type("RotatedSpaceIntervention")
