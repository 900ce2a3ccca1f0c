"""CausalModel: forward runs, interchanges, sampling and datasets against hand computations."""

from __future__ import annotations

import collections
import random

import pytest
import torch
from torch.utils.data import DataLoader

import vene as pv
from vene_train.causal import CausalModel, CausalModelError


def sum_model(seed: int | None = 0) -> CausalModel:
    """A, B, C in {0, 1, 2}; S = A + B; O = S * C."""
    digits = [0, 1, 2]
    return CausalModel(
        variables=["O", "S", "C", "B", "A"],  # out of order on purpose
        values={"A": digits, "B": digits, "C": digits, "S": [0, 1, 2, 3, 4], "O": list(range(9))},
        parents={"A": [], "B": [], "C": [], "S": ["A", "B"], "O": ["S", "C"]},
        functions={"S": lambda a, b: a + b, "O": lambda s, c: s * c},
        seed=seed,
    )


def equality_model(n: int = 10, seed: int | None = 0) -> CausalModel:
    """W, X in range(n); E = (W == X) (True for 1 in n uniform inputs)."""
    return CausalModel(
        variables=["W", "X", "E"],
        values={"W": list(range(n)), "X": list(range(n)), "E": [True, False]},
        parents={"W": [], "X": [], "E": ["W", "X"]},
        functions={"E": lambda w, x: w == x},
        seed=seed,
    )


# ---------------------------------------------------------------------------------------------
# structure and forward runs
# ---------------------------------------------------------------------------------------------
def test_structure_orders_variables_and_leaves_the_callers_lists_alone():
    names = ["O", "S", "C", "B", "A"]
    m = CausalModel(
        variables=names,
        values={"A": [0], "B": [0], "C": [0], "S": [0], "O": [0]},
        parents={"A": [], "B": [], "C": [], "S": ["A", "B"], "O": ["S", "C"]},
        functions={"S": lambda a, b: 0, "O": lambda s, c: 0},
    )
    assert names == ["O", "S", "C", "B", "A"]
    assert m.inputs == ["A", "B", "C"]  # pyvene's order: by timestep, then by name
    assert m.outputs == ["O"]
    assert m.intermediates == ["S"]
    assert m.timesteps == {"A": 0, "B": 0, "C": 0, "S": 1, "O": 2}
    assert m.children["S"] == ["O"]
    assert set(m.pos) == set(names)


def test_run_forward_matches_hand_computation_for_every_input():
    m = sum_model()
    for a in range(3):
        for b in range(3):
            for c in range(3):
                out = m.run_forward({"A": a, "B": b, "C": c})
                assert out == {"A": a, "B": b, "C": c, "S": a + b, "O": (a + b) * c}


def test_an_intervened_variable_is_never_recomputed():
    m = sum_model()
    out = m.run_forward({"A": 2, "B": 2, "C": 2, "S": 1})
    assert out["S"] == 1 and out["O"] == 2  # O sees the intervened S, not A + B = 4


def test_run_interchange_takes_the_variable_from_the_source():
    m = sum_model()
    base = {"A": 2, "B": 1, "C": 2}
    source = {"A": 0, "B": 1, "C": 0}
    out = m.run_interchange(base, {"S": source})
    assert out["S"] == 1 and out["O"] == 1 * 2
    # interchanging an input: only that input changes
    out = m.run_interchange(base, {"A": source})
    assert out["O"] == (0 + 1) * 2
    # two variables from two sources
    out = m.run_interchange(base, {"S": {"A": 2, "B": 2, "C": 0}, "C": {"A": 0, "B": 0, "C": 1}})
    assert out["O"] == 4 * 1


def test_input_functions_supply_missing_inputs():
    m = CausalModel(
        variables=["A", "B"],
        values={"A": [0, 1], "B": [0, 1]},
        parents={"A": [], "B": ["A"]},
        functions={"A": lambda: 1, "B": lambda a: 1 - a},
    )
    assert m.run_forward() == {"A": 1, "B": 0}


def test_array_values_compare_by_content():
    vecs = [torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0])]
    m = CausalModel(
        variables=["V", "U", "E"],
        values={"V": vecs, "U": vecs, "E": [True, False]},
        parents={"V": [], "U": [], "E": ["V", "U"]},
        functions={"E": lambda v, u: bool(torch.equal(v, u))},
    )
    assert m.run_forward({"V": torch.tensor([0.0, 1.0]), "U": vecs[0]})["E"] is True
    with pytest.raises(CausalModelError, match="not in values"):
        m.run_forward({"V": torch.tensor([2.0, 2.0]), "U": vecs[0]})


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def _kwargs(**changes):
    kw = dict(
        variables=["A", "B", "S"],
        values={"A": [0, 1], "B": [0, 1], "S": [0, 1, 2]},
        parents={"A": [], "B": [], "S": ["A", "B"]},
        functions={"S": lambda a, b: a + b},
    )
    kw.update(changes)
    return kw


def test_cycle_is_reported_with_its_path():
    kw = _kwargs(
        variables=["A", "B", "C", "D"],
        values={v: [0] for v in "ABCD"},
        parents={"A": [], "B": ["A", "D"], "C": ["B"], "D": ["C"]},
        functions={v: (lambda *a: 0) for v in "BCD"},
    )
    with pytest.raises(CausalModelError, match=r"cycle") as e:
        CausalModel(**kw)
    assert isinstance(e.value, pv.ConfigError) and isinstance(e.value, pv.VeneError)
    message = str(e.value)
    assert all(v in message for v in "BCD") and "A ->" not in message
    with pytest.raises(CausalModelError, match="its own parent"):
        CausalModel(**_kwargs(parents={"A": [], "B": [], "S": ["S"]}))


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"functions": {}}, r"'S' has parents \['A', 'B'\] but no function"),
        ({"functions": {"S": 3}}, "not callable"),
        ({"parents": {"A": [], "B": [], "S": ["A", "Q"]}}, r"names \['Q'\], which are not variables"),
        ({"parents": {"A": [], "S": ["A", "B"]}}, "no entry in parents"),
        ({"values": {"A": [0, 1], "B": [0, 1]}}, "'S' has no values"),
        ({"values": {"A": [0, 1], "B": [], "S": [0]}}, r"values\['B'\] is empty"),
        ({"variables": ["A", "A", "B", "S"]}, "more than once"),
        ({"functions": {"S": lambda a, b: a + b, "T": lambda: 0}}, r"functions names \['T'\]"),
    ],
)
def test_bad_graphs_raise_clear_errors(changes, match):
    with pytest.raises(CausalModelError, match=match):
        CausalModel(**_kwargs(**changes))


def test_values_outside_their_domain_are_errors():
    m = CausalModel(**_kwargs(values={"A": [0, 1], "B": [0, 1], "S": [0, 1]}))
    with pytest.raises(CausalModelError, match=r"function of 'S' gives 'S' the value 2"):
        m.run_forward({"A": 1, "B": 1})
    m = CausalModel(**_kwargs())
    with pytest.raises(CausalModelError, match=r"intervention gives 'A' the value 5"):
        m.run_forward({"A": 5, "B": 1})
    with pytest.raises(CausalModelError, match=r"\['Q'\], which are not variables"):
        m.run_forward({"A": 0, "B": 1, "Q": 3})
    with pytest.raises(CausalModelError, match="input 'B' has no value"):
        m.run_forward({"A": 0})
    with pytest.raises(CausalModelError, match="never takes the value"):
        CausalModel(**_kwargs(values={"A": [0, 1], "B": [0, 1], "S": [0, 1, 2, 7]})).sample_input_tree_balanced(
            "S", 7
        )


# ---------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------
def test_uniform_sampling_is_unbalanced_and_tree_balanced_sampling_is_balanced():
    m = equality_model(n=10)
    uniform = collections.Counter(m.run_forward(m.sample_input())["E"] for _ in range(4000))
    balanced = collections.Counter(m.run_forward(m.sample_input_tree_balanced())["E"] for _ in range(4000))
    assert 0.06 < uniform[True] / 4000 < 0.14  # 1 in 10 by chance
    assert 0.45 < balanced[True] / 4000 < 0.55
    # within a class every parent setting is equally likely: W == X spreads over all 10 entities
    ws = collections.Counter(
        s["W"] for s in (m.sample_input_tree_balanced("E", True) for _ in range(2000))
    )
    assert set(ws) == set(range(10)) and max(ws.values()) < 2.0 * min(ws.values())


def test_samplers_meet_the_requested_value():
    m = sum_model()
    for value in range(5):
        s = m.sample_input_tree_balanced(output_var="S", output_var_value=value)
        assert s["A"] + s["B"] == value
        s = m.sample_input(output_var="S", output_var_value=value)
        assert s["A"] + s["B"] == value
    s = m.sample_input_tree_balanced(output_var="A", output_var_value=2)
    assert s["A"] == 2 and set(s) == {"A", "B", "C"}
    s = m.sample_input(mandatory=lambda total: total["O"] == 8)
    assert s == {"A": 2, "B": 2, "C": 2}
    with pytest.raises(CausalModelError, match="no input meeting"):
        m.sample_input(mandatory=lambda total: total["O"] == 7)


def test_sample_intervention_draws_reachable_values_of_intermediates():
    m = sum_model()
    for _ in range(50):
        iv = m.sample_intervention()
        assert set(iv) == {"S"} and 0 <= iv["S"] <= 4


# ---------------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------------
def test_factual_dataset_is_torch_ready_and_correct():
    m = sum_model()
    data = m.generate_factual_dataset(64, seed=1)
    assert len(data) == 64
    batch = next(iter(DataLoader(data, batch_size=64)))
    x, y = batch["input_ids"], batch["labels"]
    assert x.shape == (64, 3) and y.shape == (64, 1) and x.dtype == torch.float32
    a, b, c = x.unbind(-1)
    assert torch.equal(y[:, 0], (a + b) * c)


def test_factual_dataset_options():
    m = sum_model()
    data = m.generate_factual_dataset(
        20,
        sampler=m.sample_input_tree_balanced,
        filter=lambda s: s["C"] != 0,
        inputs_function=lambda s: torch.tensor([s["A"], s["B"], s["C"]]),
        outputs_function=lambda s: torch.tensor(s["O"]),
        seed=3,
    )
    assert all(d["input_ids"][2] != 0 for d in data)
    assert all(int(d["labels"]) == int((d["input_ids"][0] + d["input_ids"][1]) * d["input_ids"][2]) for d in data)
    # pyvene's argument names
    old = m.generate_factual_dataset(5, inputFunction=lambda s: torch.tensor([s["A"]]), seed=3)
    assert old[0]["input_ids"].shape == (1,)
    raw = m.generate_factual_dataset(5, return_tensors=False, seed=3)
    assert raw[0]["labels"] == m.run_forward(raw[0]["input_ids"])
    with pytest.raises(CausalModelError, match="not both"):
        m.generate_factual_dataset(1, inputs_function=m.input_to_tensor, inputFunction=m.input_to_tensor)


def test_datasets_are_reproducible_by_seed():
    m = sum_model(seed=None)
    a = m.generate_counterfactual_dataset(30, lambda iv: 0, 5, seed=7)
    b = m.generate_counterfactual_dataset(30, lambda iv: 0, 5, seed=7)
    c = m.generate_counterfactual_dataset(30, lambda iv: 0, 5, seed=8)
    stack = lambda d, k: torch.stack([e[k] for e in d])  # noqa: E731
    assert torch.equal(stack(a, "input_ids"), stack(b, "input_ids"))
    assert torch.equal(stack(a, "source_input_ids"), stack(b, "source_input_ids"))
    assert not torch.equal(stack(a, "input_ids"), stack(c, "input_ids"))


def test_counterfactual_dataset_with_default_samplers_matches_hand_interchanges():
    m = sum_model()
    data = m.generate_counterfactual_dataset(200, lambda iv: 7, batch_size=10, seed=2)
    assert len(data) == 200
    batch = next(iter(DataLoader(data, batch_size=200)))
    base, src = batch["input_ids"], batch["source_input_ids"]
    assert src.shape == (200, 1, 3)  # one intermediate variable (S): one source slot
    assert torch.equal(batch["intervention_id"], torch.full((200, 1), 7))
    a, b, c = base.unbind(-1)
    sa, sb, _ = src[:, 0].unbind(-1)
    assert torch.equal(batch["labels"][:, 0], (sa + sb) * c)
    assert torch.equal(batch["base_labels"][:, 0], (a + b) * c)
    # runs of batch_size examples share one intervention value of S
    s_values = (sa + sb).view(20, 10)
    assert torch.equal(s_values, s_values[:, :1].expand(20, 10))


def test_counterfactual_dataset_pads_sources_and_orders_them_by_variable():
    m = CausalModel(
        variables=["A", "B", "P", "Q", "O"],
        values={"A": [0, 1], "B": [0, 1], "P": [0, 1], "Q": [0, 1], "O": [0, 1, 2]},
        parents={"A": [], "B": [], "P": ["A"], "Q": ["B"], "O": ["P", "Q"]},
        functions={"P": lambda a: a, "Q": lambda b: b, "O": lambda p, q: p + q},
        seed=0,
    )
    rng = random.Random(0)
    choices = [{"P": 1}, {"Q": 0}, {"P": 0, "Q": 1}]

    def sampler():
        return choices[rng.randrange(3)]

    data = m.generate_counterfactual_dataset(
        60, lambda iv: {"P": 0, "Q": 1}.get("".join(sorted(iv)), 2), 1, intervention_sampler=sampler
    )
    for ex in data:
        iid = int(ex["intervention_id"])
        base, src = ex["input_ids"], ex["source_input_ids"]
        assert src.shape == (2, 2)
        p, q = base[0], base[1]
        if iid == 0:  # P from source 0; slot 1 is zero padding
            p = src[0, 0]
            assert torch.equal(src[1], torch.zeros(2))
        elif iid == 1:  # Q from source 0
            q = src[0, 1]
        else:  # P from source 0, Q from source 1 (variable order)
            p, q = src[0, 0], src[1, 1]
        assert float(ex["labels"]) == float(p + q)
    with pytest.raises(CausalModelError, match="must return an int"):
        m.generate_counterfactual_dataset(2, lambda iv: "P", 1, intervention_sampler=sampler)


def test_vene_exposes_the_causal_model():
    assert pv.CausalModel is CausalModel
