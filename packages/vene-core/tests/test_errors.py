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


# --- every config field is checked when the record is built -------------------------------------


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"layer": "3"}, r"layer must be an int .* use layer=3"),
        ({"layer": 1.5}, r"layer must be an int"),
        ({"max_number_of_units": 0}, r"max_number_of_units must be a positive int"),
        ({"low_rank_dimension": -2}, r"low_rank_dimension must be a positive int"),
        ({"latent_dim": "8"}, r"latent_dim must be a positive int"),
        ({"group_key": [0]}, r"group_key must be hashable"),
        ({"intervention_link_key": {"a": 1}}, r"intervention_link_key must be hashable"),
        ({"intervention_type": 3}, r"intervention_type must be an Intervention subclass"),
        ({"intervention_type": pv.ZeroIntervention()}, r"pass the instance as intervention="),
        ({"intervention": pv.ZeroIntervention}, r"got the class ZeroIntervention; pass intervention=ZeroIntervention\(\)"),
        ({"intervention": torch.nn.Linear(2, 2)}, r"must be a vene Intervention instance or a function"),
        ({"intervention": 5}, r"must be a vene Intervention instance or a function"),
        ({"component": 7}, r"component must be a string.*'block_output'"),
    ],
)
def test_a_bad_field_is_named_with_the_fix(fields, match):
    with pytest.raises(pv.ConfigError, match=match):
        pv.RepresentationConfig(**fields)
    with pytest.raises(pv.ConfigError, match=match):  # the dict form, as pyvene users write it
        pv.IntervenableConfig(representations=[{"layer": 0, **fields}])


def test_integer_kinds_are_layers():
    # np.arange and tensor indices are integers too: a loop over them builds configs
    import numpy as np

    assert pv.RepresentationConfig(layer=np.int64(2)).layer == 2
    assert type(pv.RepresentationConfig(layer=torch.tensor(1)).layer) is int
    with pytest.raises(pv.ConfigError, match="layer must be an int"):
        pv.RepresentationConfig(layer=True)


def test_unknown_keyword_and_too_many_positionals():
    with pytest.raises(pv.ConfigError, match="unknown representation field 'componet'.*component"):
        pv.RepresentationConfig(componet="block_output")
    with pytest.raises(pv.ConfigError, match="at most 14 fields"):
        pv.RepresentationConfig(*range(15))
    with pytest.raises(pv.ConfigError, match="unknown arguments.*representation"):
        pv.IntervenableConfig(representation=[{}])
    with pytest.raises(pv.ConfigError, match=r"intervention_types\[1\]"):
        pv.IntervenableConfig(representations=[{}, {}], intervention_types=[pv.ZeroIntervention, 4])
    with pytest.raises(pv.ConfigError, match="parallel"):
        pv.IntervenableConfig(mode=None)
