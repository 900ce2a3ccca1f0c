"""The hierarchical equality reproduction (Geiger et al., 2023) of examples/, in its fast configuration.

DAS on the first hidden layer finds the two equality relations (IIA >= 0.95) and rejects a
hypothesis about variables the network does not compute; IIT makes a fresh network carry them.
"""

from __future__ import annotations

import collections
import importlib.util
import pathlib
import sys

import pytest
import torch

EXAMPLE = pathlib.Path(__file__).resolve().parents[3] / "examples" / "hierarchical_equality.py"


def _load_example():
    """The example, imported from its path (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("vene_examples_hierarchical_equality", EXAMPLE)
    assert spec is not None and spec.loader is not None, EXAMPLE
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs and pickling look classes up by module name
    spec.loader.exec_module(module)
    return module


he = _load_example()


@pytest.fixture
def one_thread():
    """A 16-64-64-64 MLP runs fastest on one thread; more only adds synchronisation."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_balanced_sampler_agrees_with_the_causal_models_tree_balanced_sampler():
    model = he.equality_model(6, seed=0)
    fast = he.BalancedSampler(model, he.EQUALITY_PAIRS)

    def stats(sampler):
        count = collections.Counter()
        for _ in range(3000):
            s = model.run_forward(sampler())
            count[(s["WX"], s["YZ"])] += 1
        return {k: v / 3000 for k, v in count.items()}

    a, b = stats(fast), stats(model.sample_input_tree_balanced)
    assert set(a) == set(b) == {(x, y) for x in (True, False) for y in (True, False)}
    for k in a:
        assert a[k] == pytest.approx(0.25, abs=0.04) and b[k] == pytest.approx(0.25, abs=0.04)
    for var, value in (("WX", True), ("YZ", False), ("O", False), ("W", 3), ("Z", 5)):
        for _ in range(50):
            assert model.run_forward(fast(output_var=var, output_var_value=value))[var] == value
    wrong = he.pair_model(6, seed=0)
    s = he.BalancedSampler(wrong, he.WRONG_PAIRS)(output_var="WY", output_var_value=True)
    assert s["W"] == s["Y"]


def test_collator_routes_each_variable_to_its_group():
    base = torch.arange(4.0)[:, None].expand(4, 3)
    sources = torch.stack([base + 10, base + 20], 1)  # slot 0: +10, slot 1: +20
    ids = torch.tensor([[1], [2], [3], [1]])  # WX only, YZ only, both, WX only
    batch = {
        "input_ids": base, "source_input_ids": sources, "intervention_id": ids,
        "labels": torch.zeros(4), "base_labels": torch.zeros(4),
    }
    out = he.InterchangeCollator(2)(batch)
    wx, yz = (s["inputs_embeds"][:, 0].tolist() for s in out["sources"])
    assert wx == [10, 1, 12, 13]  # example 1 does not intervene on WX: its own base
    assert yz == [0, 11, 22, 3]  # YZ is slot 0 when alone, slot 1 after WX
    assert out["subspaces"] == [[[0]] * 4, [[1]] * 4]


def test_hierarchical_equality_fast(one_thread):
    result = he.run(he.FAST)
    table = he.format_table(result)
    print(table)
    assert result.task_accuracy >= 0.98
    right = result.iia("both equalities")
    wrong = result.iia("a == c, b == d")
    assert right >= 0.95, table
    assert wrong <= right - 0.2, table
    assert result.iit is not None
    assert result.iit.iia_before < 0.7  # a fresh network does not carry the variables ...
    assert result.iit.iia >= 0.95, table  # ... IIT makes it
    assert result.iit.task_accuracy >= max(0.97, result.task_accuracy - 0.02), table
    for row in ("both equalities", "a == c, b == d", "IIT"):
        assert row in table
