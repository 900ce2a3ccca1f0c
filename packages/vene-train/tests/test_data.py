"""vene_train.data: subset counterfactuals against the causal graph computed by hand, the
collator against hand-built batches, seeded loaders, and the errors."""

from __future__ import annotations

import collections

import pytest
import torch

import vene as pv
from vene_train.causal import CausalModel
from vene_train.data import DataError, InterchangeCollator, seeded_loader, subset_counterfactual_dataset
from vene_train.trainers import DASTrainer


def _model() -> CausalModel:
    """A, B, C, D in 0..3; S = A + B, T = C * D; O = S + 10 T."""
    return CausalModel(
        variables=["A", "B", "C", "D", "S", "T", "O"],
        values={
            **{v: range(4) for v in "ABCD"}, "S": range(7), "T": [0, 1, 2, 3, 4, 6, 9], "O": range(100)
        },
        parents={**{v: [] for v in "ABCD"}, "S": ["A", "B"], "T": ["C", "D"], "O": ["S", "T"]},
        functions={"S": lambda a, b: a + b, "T": lambda c, d: c * d, "O": lambda s, t: s + 10 * t},
        seed=0,
    )


def _inputs(setting):
    return torch.tensor([float(setting[v]) for v in "ABCD"])


def _outputs(setting):
    return torch.tensor(setting["O"])


def test_subset_counterfactuals_follow_the_graph_written_out():
    data = subset_counterfactual_dataset(
        _model(), ["S", "T"], 600, seed=3, inputs_function=_inputs, outputs_function=_outputs
    )
    assert len(data) == 600
    subsets = collections.Counter()
    for ex in data:
        mask = int(ex["intervention_id"].reshape(-1)[0])
        subsets[mask] += 1
        a, b, c, d = ex["input_ids"].tolist()
        s, t = a + b, c * d  # the base's own values
        slot = 0
        if mask & 1:  # S from the first source
            sa, sb, _, _ = ex["source_input_ids"][slot].tolist()
            s, slot = sa + sb, slot + 1
        if mask & 2:  # T from the next one
            _, _, tc, td = ex["source_input_ids"][slot].tolist()
            t = tc * td
        assert int(ex["labels"]) == s + 10 * t
        assert int(ex["base_labels"]) == (a + b) + 10 * (c * d)
    assert set(subsets) == {1, 2, 3}  # every non-empty subset, none empty
    assert all(abs(n / 600 - 1 / 3) < 0.07 for n in subsets.values())
    again = subset_counterfactual_dataset(
        _model(), ["S", "T"], 600, seed=3, inputs_function=_inputs, outputs_function=_outputs
    )
    assert all(torch.equal(x["source_input_ids"], y["source_input_ids"]) for x, y in zip(data, again))


def test_the_collator_routes_each_variable_to_its_group_and_pads_groups():
    n = 5
    base = torch.arange(float(n))[:, None, None].expand(n, 2, 3)  # [batch, positions, width]
    sources = torch.stack([base + 10, base + 20, base + 30], 1)  # slots 0, 1, 2
    ids = torch.tensor([1, 2, 4, 5, 7])  # {0}, {1}, {2}, {0, 2}, {0, 1, 2}
    batch = {
        "input_ids": base, "source_input_ids": sources, "intervention_id": ids[:, None],
        "labels": torch.zeros(n), "base_labels": torch.ones(n),
    }
    out = InterchangeCollator(3, "input_ids", n_groups=4)(batch)
    got = [s["input_ids"][:, 0, 0].tolist() if s is not None else None for s in out["sources"]]
    # variable k reads the slot of the intervened variables before it; others keep the base
    assert got[0] == [10, 1, 2, 13, 14]
    assert got[1] == [0, 11, 2, 3, 24]
    assert got[2] == [0, 1, 12, 23, 34]
    assert got[3] is None and out["subspaces"][3] is None
    assert out["subspaces"][:3] == [[[0]] * n, [[1]] * n, [[2]] * n]
    assert torch.equal(out["base"]["input_ids"], base)
    assert torch.equal(out["labels"], batch["labels"]) and torch.equal(out["base_labels"], batch["base_labels"])
    # whole rows move: every position and feature of the chosen source
    torch.testing.assert_close(out["sources"][2]["input_ids"][3], sources[3, 1])


def test_the_collator_feeds_the_trainer():
    """DAS with the collator: the intervened logits equal the MLP run by hand on the mixed rows."""
    torch.manual_seed(0)
    _, _, mlp = pv.create_mlp_classifier(pv.MLPConfig(h_dim=8, n_layer=2, input_dim=4, num_classes=3))
    reps = [{"layer": 0, "component": "block_output", "subspace_partition": [[0, 4], [4, 8]]}] * 2
    im = pv.IntervenableModel(reps, mlp.eval())
    data = subset_counterfactual_dataset(_model(), ["S", "T"], 8, seed=0, inputs_function=_inputs,
                                         outputs_function=lambda s: torch.tensor(s["O"] % 3))
    (raw,) = list(seeded_loader(data, 8))
    batch = InterchangeCollator(2)(raw)
    trainer = DASTrainer(im, progress=False)
    with torch.no_grad():
        got = trainer.intervened_logits(batch)
        h = torch.relu(mlp.mlp.h[0].ff1(raw["input_ids"]))
        for k, src in enumerate(batch["sources"]):
            hs = torch.relu(mlp.mlp.h[0].ff1(src["inputs_embeds"]))
            part = slice(4 * k, 4 * k + 4)
            h = torch.cat([h[:, : part.start], hs[:, part], h[:, part.stop :]], 1)
        want = mlp.score(torch.relu(mlp.mlp.h[1].ff1(h)))
    torch.testing.assert_close(got, want)


def test_seeded_loader_repeats_its_shuffle():
    data = [{"x": torch.tensor(i)} for i in range(20)]

    def order(loader):
        return [int(v) for b in loader for v in b["x"]]

    assert order(seeded_loader(data, 6)) == list(range(20))
    a = order(seeded_loader(data, 6, shuffle=True, seed=1))
    assert a == order(seeded_loader(data, 6, shuffle=True, seed=1))
    assert sorted(a) == list(range(20)) and a != list(range(20))
    assert a != order(seeded_loader(data, 6, shuffle=True, seed=2))


def test_data_errors_say_what_to_fix():
    m = _model()
    with pytest.raises(DataError, match="causal model's order: \\['S', 'T'\\]") as e:
        subset_counterfactual_dataset(m, ["T", "S"], 4, seed=0)
    assert isinstance(e.value, pv.ConfigError)
    with pytest.raises(DataError, match="\\['Q'\\] are not variables"):
        subset_counterfactual_dataset(m, ["S", "Q"], 4, seed=0)
    with pytest.raises(DataError, match="at least one variable"):
        subset_counterfactual_dataset(m, [], 4, seed=0)
    with pytest.raises(DataError, match="n_variables must be a positive int"):
        InterchangeCollator(0)
    with pytest.raises(DataError, match="n_groups must be an int >= n_variables"):
        InterchangeCollator(2, n_groups=1)
    base = torch.zeros(2, 3)
    good = {
        "input_ids": base, "source_input_ids": torch.zeros(2, 1, 3), "intervention_id": torch.tensor([[1], [2]]),
        "labels": torch.zeros(2), "base_labels": torch.zeros(2),
    }
    with pytest.raises(DataError, match="needs \\['base_labels'\\]"):
        InterchangeCollator(2)({k: v for k, v in good.items() if k != "base_labels"})
    with pytest.raises(DataError, match="intervention_id 4 is not a bitmask of 2 variables"):
        InterchangeCollator(2)({**good, "intervention_id": torch.tensor([[1], [4]])})
    with pytest.raises(DataError, match="one id per example"):
        InterchangeCollator(2)({**good, "intervention_id": torch.tensor([1])})
    with pytest.raises(DataError, match="fewer sources per example than the 2 variables"):
        InterchangeCollator(2)({**good, "intervention_id": torch.tensor([[3], [2]])})
    with pytest.raises(DataError, match="batch_size must be a positive int"):
        seeded_loader([], 0)
