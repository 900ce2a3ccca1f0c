"""Reproduce the hierarchical equality result of Geiger et al. (2023), "Finding Alignments
Between Interpretable Causal Variables and Distributed Neural Representations".

An MLP learns ``(a == b) == (c == d)`` from four random vectors. Distributed alignment search
(DAS) then learns a rotation of its first hidden layer, split in two halves, and measures how
well each hypothesis holds (interchange intervention accuracy, IIA): the two equality relations
``a == b`` and ``c == d`` are found (IIA near 1), while variables the network does not compute
(``a == c``, ``b == d``) score far lower. Finally interchange intervention training (IIT) makes a
fresh MLP carry the two relations in the two halves of its first hidden layer, without losing
task accuracy.

Run: python examples/hierarchical_equality.py [--fast] [--seed N] [--progress] [--device cuda]
(about a minute and a half on two CPUs; --fast is the configuration the tests run).
Needs vene-core and vene-train.

The input is four vectors ``a, b, c, d`` in R^4, concatenated; the label is ``(a == b) == (c ==
d)``. Entities come from a bank of random vectors so large that inputs practically hold fresh
vectors. A small MLP learns the task. Then:

* **DAS.** A rotation of the MLP's first hidden layer is learned, with its rotated space split
  in two halves (``subspace_partition``), under the hypothesis that half ``k`` holds causal
  variable ``k``. Interchange intervention accuracy (IIA) on held-out counterfactuals says how
  well the hypothesis holds. The right hypothesis, *both equality relations* (``WX = a == b``
  and ``YZ = c == d``), reaches an IIA near 1, and so does *left equality* (``WX`` alone). A
  model of variables the network does not compute, *a == c / b == d* (``O = (a == c) == (b ==
  d)``), scores near chance; *identity of a* (the first half holds the vector ``a`` itself)
  scores in between.
* **IIT.** A fresh MLP is trained on the task loss plus the interchange intervention loss of
  plain (vanilla) interchanges at the first hidden layer, so that its first half carries
  ``a == b`` and its second half ``c == d`` by construction, without losing task accuracy.

``run`` does it all for a ``HierarchicalEqualityConfig`` and returns a
``HierarchicalEqualityResult``; ``format_table`` prints it. ``FAST`` is a smaller
configuration (for tests) of the same code.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from attrs import define, evolve, field, frozen
from torch import Tensor

import vene as pv
from vene_train.causal import CausalModel
from vene_train.data import InterchangeCollator, seeded_loader, subset_counterfactual_dataset
from vene_train.trainers import DASTrainer, IITTrainer

__all__ = [
    "HierarchicalEqualityConfig",
    "HierarchicalEqualityResult",
    "Hypothesis",
    "HypothesisResult",
    "DEFAULT",
    "FAST",
    "HYPOTHESES",
    "make_entities",
    "equality_model",
    "pair_model",
    "hypotheses",
    "factual_data",
    "counterfactual_data",
    "InterchangeCollator",
    "BalancedSampler",
    "EQUALITY_PAIRS",
    "WRONG_PAIRS",
    "main",
    "train_task_model",
    "task_accuracy",
    "alignment_model",
    "run_das",
    "run_iit",
    "run",
    "format_table",
]


@frozen
class HierarchicalEqualityConfig:
    """Sizes and budgets of one reproduction. Every random draw derives from ``seed``.

    Entities are drawn from a bank of ``n_entities`` random vectors, so large that each input
    practically holds fresh vectors (as in the paper): the network must learn equality itself,
    not memorise which entities are equal.
    """

    seed: int = 0
    entity_dim: int = 4
    n_entities: int = 100_000
    h_dim: int = 64
    n_layer: int = 3
    batch_size: int = 64
    # the task model
    task_train_size: int = 384_000
    task_eval_size: int = 4_000
    task_epochs: int = 1
    task_lr: float = 5e-3
    # DAS
    das_layer: int = 0
    das_train_size: int = 16_000
    das_eval_size: int = 4_000
    das_epochs: int = 6
    das_lr: float = 1e-2
    # IIT
    iit_train_size: int = 48_000
    iit_epochs: int = 3
    iit_lr: float = 5e-3
    hypotheses: tuple[str, ...] = ("both equalities", "left equality", "identity of a", "a == c, b == d")


DEFAULT = HierarchicalEqualityConfig()
FAST = evolve(
    DEFAULT,
    task_train_size=192_000,
    task_eval_size=1_000,
    das_train_size=8_000,
    das_eval_size=1_000,
    iit_train_size=24_000,
    iit_epochs=4,
    hypotheses=("both equalities", "a == c, b == d"),
)


# ---------------------------------------------------------------------------------------------
# causal models
# ---------------------------------------------------------------------------------------------
def make_entities(config: HierarchicalEqualityConfig) -> Tensor:
    """``[n_entities, entity_dim]`` random vectors, uniform in [-1, 1), from ``config.seed``."""
    g = torch.Generator().manual_seed(config.seed)
    return torch.rand(config.n_entities, config.entity_dim, generator=g) * 2 - 1


def _same(x: Any, y: Any) -> bool:
    return x == y


def _pairs_model(pairs: Mapping[str, tuple[str, str]], n_entities: int, seed: int | None) -> CausalModel:
    """Inputs ``W, X, Y, Z`` (entity indices), one equality variable per pair, ``O`` the
    equality of the two equality variables."""
    entities = range(n_entities)
    (p, (a, b)), (q, (c, d)) = pairs.items()
    inputs = ["W", "X", "Y", "Z"]
    return CausalModel(
        variables=[*inputs, p, q, "O"],
        values={**{v: entities for v in inputs}, p: [True, False], q: [True, False], "O": [True, False]},
        parents={**{v: [] for v in inputs}, p: [a, b], q: [c, d], "O": [p, q]},
        functions={p: _same, q: _same, "O": _same},
        seed=seed,
    )


EQUALITY_PAIRS = {"WX": ("W", "X"), "YZ": ("Y", "Z")}
WRONG_PAIRS = {"WY": ("W", "Y"), "XZ": ("X", "Z")}


def equality_model(n_entities: int, seed: int | None = None) -> CausalModel:
    """The task's causal model: ``WX = (W == X)``, ``YZ = (Y == Z)``, ``O = (WX == YZ)``.

    ``W, X, Y, Z`` are indices into the entity bank; the data functions turn them into vectors.
    """
    return _pairs_model(EQUALITY_PAIRS, n_entities, seed)


def pair_model(n_entities: int, seed: int | None = None) -> CausalModel:
    """A wrong hypothesis: the network compares ``a`` with ``c`` and ``b`` with ``d``:
    ``WY = (W == Y)``, ``XZ = (X == Z)``, ``O = (WY == XZ)``."""
    return _pairs_model(WRONG_PAIRS, n_entities, seed)


class BalancedSampler:
    """The balanced ("tree") sampler of a two-pair equality model, in closed form.

    It draws what :meth:`CausalModel.sample_input_tree_balanced` draws (the requested variable's
    value uniformly, then uniformly among the parent settings that give it), but without
    enumerating the ``n_entities ** 2`` settings of each pair: an equal pair is one entity twice,
    an unequal pair two different entities. Called as ``sampler()`` or
    ``sampler(output_var=..., output_var_value=...)``, like the causal model's samplers.
    """

    def __init__(self, model: CausalModel, pairs: Mapping[str, tuple[str, str]]) -> None:
        self.model = model
        self.pairs = dict(pairs)
        self.n = len(model.values["W"])
        p, q = self.pairs
        self._ways = {
            value: [(x, y) for x in (True, False) for y in (True, False) if model.functions["O"](x, y) == value]
            for value in (True, False)
        }
        self._names = (p, q)

    def _other(self, e: int) -> int:
        rng = self.model.rng
        f = rng.randrange(self.n - 1)
        return f + 1 if f >= e else f

    def __call__(self, output_var: str | None = None, output_var_value: Any = None) -> dict[str, Any]:
        rng = self.model.rng
        var = output_var or "O"
        if output_var_value is None:
            output_var_value = rng.choice(self.model.values[var])
        fixed: dict[str, Any] = {}
        p, q = self._names
        if var == "O":
            relations = dict(zip((p, q), rng.choice(self._ways[bool(output_var_value)])))
        else:
            relations = {p: rng.random() < 0.5, q: rng.random() < 0.5}
            if var in relations:
                relations[var] = bool(output_var_value)
            else:
                fixed[var] = output_var_value
        setting: dict[str, Any] = {}
        for name, (a, b) in self.pairs.items():
            if b in fixed and a not in fixed:
                a, b = b, a
            first = fixed.get(a, rng.randrange(self.n))
            second = first if relations[name] else self._other(first)
            setting[a], setting[b] = first, second
        return setting


@frozen
class Hypothesis:
    """A causal model and the variables it says the rotated halves hold (half k <- variable k)."""

    name: str
    pairs: Mapping[str, tuple[str, str]]
    variables: tuple[str, ...]
    description: str

    def build(self, n_entities: int, seed: int | None = None) -> CausalModel:
        return _pairs_model(self.pairs, n_entities, seed)


HYPOTHESES: dict[str, Hypothesis] = {
    h.name: h
    for h in (
        Hypothesis("both equalities", EQUALITY_PAIRS, ("WX", "YZ"), "a == b | c == d"),
        Hypothesis("left equality", EQUALITY_PAIRS, ("WX",), "a == b | -"),
        Hypothesis("identity of a", EQUALITY_PAIRS, ("W",), "a | -"),
        Hypothesis("a == c, b == d", WRONG_PAIRS, ("WY", "XZ"), "a == c | b == d"),
    )
}


def hypotheses(names: Sequence[str]) -> list[Hypothesis]:
    unknown = [n for n in names if n not in HYPOTHESES]
    if unknown:
        raise pv.ConfigError(f"unknown hypotheses {unknown}; known: {sorted(HYPOTHESES)}.")
    return [HYPOTHESES[n] for n in names]


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def _inputs_function(entities: Tensor) -> Callable[[Mapping[str, Any]], Tensor]:
    def inputs_function(setting: Mapping[str, Any]) -> Tensor:
        idx = torch.tensor([setting["W"], setting["X"], setting["Y"], setting["Z"]])
        return entities[idx].reshape(-1)

    return inputs_function


def _outputs_function(setting: Mapping[str, Any]) -> Tensor:
    return torch.tensor(int(setting["O"]))


def factual_data(
    model: CausalModel, pairs: Mapping[str, tuple[str, str]], entities: Tensor, size: int, seed: int
) -> list[dict[str, Tensor]]:
    """Balanced factual examples ``{"input_ids": [4 * entity_dim], "labels": 0 | 1}``."""
    return model.generate_factual_dataset(
        size,
        BalancedSampler(model, pairs),
        inputs_function=_inputs_function(entities),
        outputs_function=_outputs_function,
        seed=seed,
    )


def counterfactual_data(
    model: CausalModel,
    pairs: Mapping[str, tuple[str, str]],
    variables: Sequence[str],
    entities: Tensor,
    size: int,
    seed: int,
) -> list[dict[str, Tensor]]:
    """Counterfactual examples for interchanges on ``variables``, from balanced bases and sources.

    Each example intervenes on a non-empty subset of ``variables`` (uniformly), each with a
    value drawn uniformly from its values; ``intervention_id`` is the bitmask of the
    subset (bit k: ``variables[k]``), and the sources are in the causal model's variable order.
    """
    return subset_counterfactual_dataset(
        model,
        variables,
        size,
        seed=seed,
        sampler=BalancedSampler(model, pairs),
        inputs_function=_inputs_function(entities),
        outputs_function=_outputs_function,
    )


# ---------------------------------------------------------------------------------------------
# the task model
# ---------------------------------------------------------------------------------------------
def _mlp(config: HierarchicalEqualityConfig) -> pv.MLPForClassification:
    _, _, model = pv.create_mlp_classifier(
        pv.MLPConfig(
            h_dim=config.h_dim,
            n_layer=config.n_layer,
            num_classes=2,
            input_dim=4 * config.entity_dim,
            activation_function="relu",
        )
    )
    return model


@torch.no_grad()
def task_accuracy(model: torch.nn.Module, data: Sequence[Mapping[str, Tensor]]) -> float:
    """Accuracy of ``model`` on factual examples."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.stack([d["input_ids"] for d in data]).to(device)
    y = torch.stack([d["labels"] for d in data]).to(device)
    acc = float((model(inputs_embeds=x)["logits"].argmax(-1) == y).float().mean())
    model.train(was)
    return acc


def train_task_model(
    config: HierarchicalEqualityConfig,
    train: Sequence[Mapping[str, Tensor]],
    device: Any = "cpu",
) -> pv.MLPForClassification:
    """Train the MLP on factual examples with Adam and cross-entropy."""
    torch.manual_seed(config.seed)
    model = _mlp(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.task_lr)
    x = torch.stack([d["input_ids"] for d in train]).to(device)
    y = torch.stack([d["labels"] for d in train]).to(device)
    g = torch.Generator().manual_seed(config.seed)
    model.train()
    for _ in range(config.task_epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), config.batch_size):
            idx = order[i : i + config.batch_size].to(device)
            loss = model(inputs_embeds=x[idx], labels=y[idx])["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------
# DAS and IIT
# ---------------------------------------------------------------------------------------------
def alignment_model(
    model: torch.nn.Module,
    config: HierarchicalEqualityConfig,
    intervention_type: type,
) -> pv.IntervenableModel:
    """Two representations at the first hidden layer, one per half of its (rotated) space.

    Both halves of ``subspace_partition`` belong to one shared intervention
    (``intervention_link_key``), so DAS learns a single rotation; each representation has its own
    source (group), so the two variables can come from different inputs.
    """
    half = config.h_dim // 2
    partition = [[0, half], [half, config.h_dim]]
    shared = intervention_type is not pv.VanillaIntervention
    reps = [
        pv.RepresentationConfig(
            layer=config.das_layer,
            component="block_output",
            unit="pos",
            max_number_of_units=1,
            subspace_partition=partition,
            intervention_link_key=0 if shared else None,
        )
        for _ in range(2)
    ]
    return pv.IntervenableModel(
        pv.IntervenableConfig(representations=reps, intervention_types=intervention_type), model
    )


@frozen
class HypothesisResult:
    """DAS's outcome for one hypothesis. ``factual_agreement``: how often the hypothesis' causal
    model gives the network's own answer on the (unintervened) held-out base inputs."""

    name: str
    variables: tuple[str, ...]
    description: str
    iia: float
    factual_agreement: float
    seconds: float


def run_das(
    task_model: torch.nn.Module,
    config: HierarchicalEqualityConfig,
    entities: Tensor,
    hypothesis: Hypothesis,
    progress: bool = False,
) -> HypothesisResult:
    """Learn a rotation of the first hidden layer for ``hypothesis``; IIA on held-out data."""
    start = time.perf_counter()
    causal = hypothesis.build(config.n_entities, config.seed)
    n = len(hypothesis.variables)
    pairs, variables = hypothesis.pairs, hypothesis.variables
    train = counterfactual_data(causal, pairs, variables, entities, config.das_train_size, config.seed + 1)
    test = counterfactual_data(causal, pairs, variables, entities, config.das_eval_size, config.seed + 2)
    torch.manual_seed(config.seed)
    im = alignment_model(task_model, config, pv.RotatedSpaceIntervention)
    im.set_device(next(task_model.parameters()).device)  # batches follow the model
    trainer = DASTrainer(im, lr=config.das_lr, epochs=config.das_epochs, seed=config.seed, progress=progress)
    collate = InterchangeCollator(n, n_groups=2)  # a half not hypothesised gets no source
    train_loader = seeded_loader(train, config.batch_size, shuffle=True, seed=config.seed)
    trainer.train_alignment(train_loader, inputs_collator=collate)
    iia = trainer.eval_alignment(seeded_loader(test, 256), inputs_collator=collate)
    # how often the hypothesis' model agrees with the network on the (factual) base inputs
    base = [{"input_ids": d["input_ids"], "labels": d["base_labels"]} for d in test]
    agreement = task_accuracy(task_model, base)
    return HypothesisResult(
        name=hypothesis.name,
        variables=hypothesis.variables,
        description=hypothesis.description,
        iia=iia,
        factual_agreement=agreement,
        seconds=time.perf_counter() - start,
    )


@frozen
class IITResult:
    """IIT's outcome: IIA of the vanilla interchanges before and after, and task accuracy."""

    iia: float
    task_accuracy: float
    iia_before: float
    seconds: float


def run_iit(
    config: HierarchicalEqualityConfig,
    entities: Tensor,
    factual_test: Sequence[Mapping[str, Tensor]],
    progress: bool = False,
    device: Any = "cpu",
) -> IITResult:
    """IIT on a fresh MLP: the halves of its first hidden layer are trained to carry ``a == b``
    and ``c == d`` (vanilla interchanges), together with the task loss."""
    start = time.perf_counter()
    causal = equality_model(config.n_entities, config.seed)
    variables = ("WX", "YZ")
    train = counterfactual_data(causal, EQUALITY_PAIRS, variables, entities, config.iit_train_size, config.seed + 3)
    test = counterfactual_data(causal, EQUALITY_PAIRS, variables, entities, config.das_eval_size, config.seed + 4)
    torch.manual_seed(config.seed + 5)
    fresh = _mlp(config).to(device)
    im = alignment_model(fresh, config, pv.VanillaIntervention)
    im.set_device(device)
    collate = InterchangeCollator(2)
    trainer = IITTrainer(im, lr=config.iit_lr, epochs=config.iit_epochs, seed=config.seed, progress=progress)
    test_loader = seeded_loader(test, 256)
    before = trainer.eval_alignment(test_loader, inputs_collator=collate)
    train_loader = seeded_loader(train, config.batch_size, shuffle=True, seed=config.seed)
    trainer.train_alignment(train_loader, inputs_collator=collate)
    iia = trainer.eval_alignment(test_loader, inputs_collator=collate)
    return IITResult(
        iia=iia,
        task_accuracy=task_accuracy(fresh, factual_test),
        iia_before=before,
        seconds=time.perf_counter() - start,
    )


# ---------------------------------------------------------------------------------------------
# the whole reproduction
# ---------------------------------------------------------------------------------------------
@define
class HierarchicalEqualityResult:
    """Everything :func:`run` measured."""

    config: HierarchicalEqualityConfig
    task_accuracy: float = 0.0
    das: list[HypothesisResult] = field(factory=list)
    iit: IITResult | None = None
    seconds: float = 0.0

    def iia(self, name: str) -> float:
        """The DAS IIA of the hypothesis called ``name``."""
        return next(r.iia for r in self.das if r.name == name)


def run(
    config: HierarchicalEqualityConfig = DEFAULT,
    *,
    iit: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    device: Any = "cpu",
) -> HierarchicalEqualityResult:
    """Train the task model, run DAS for each hypothesis of ``config``, then IIT (on
    ``device``; the data is made on the CPU and moved batch by batch)."""
    start = time.perf_counter()
    say = log or (lambda msg: None)
    result = HierarchicalEqualityResult(config=config)
    entities = make_entities(config)
    causal = equality_model(config.n_entities, config.seed)
    train = factual_data(causal, EQUALITY_PAIRS, entities, config.task_train_size, config.seed)
    test = factual_data(causal, EQUALITY_PAIRS, entities, config.task_eval_size, config.seed + 100)
    model = train_task_model(config, train, device)
    result.task_accuracy = task_accuracy(model, test)
    say(f"task model: accuracy {result.task_accuracy:.4f} on {len(test)} held-out inputs")
    for h in hypotheses(config.hypotheses):
        r = run_das(model, config, entities, h, progress=progress)
        result.das.append(r)
        say(f"DAS {h.name!r}: IIA {r.iia:.4f} ({r.seconds:.1f}s)")
    if iit:
        result.iit = run_iit(config, entities, test, progress=progress, device=device)
        say(f"IIT: IIA {result.iit.iia:.4f}, task accuracy {result.iit.task_accuracy:.4f}")
    result.seconds = time.perf_counter() - start
    return result


def format_table(result: HierarchicalEqualityResult) -> str:
    """The results as a plain-text table: IIA per hypothesis, then IIT."""
    c = result.config
    lines = [
        f"Hierarchical equality: MLP {4 * c.entity_dim}-{'-'.join([str(c.h_dim)] * c.n_layer)}-2, "
        f"task accuracy {result.task_accuracy:.3f}",
        f"DAS on layer {c.das_layer} (block_output), rotated space split in halves "
        f"{[[0, c.h_dim // 2], [c.h_dim // 2, c.h_dim]]}",
        "",
        f"{'hypothesis':<16} {'halves':<17} {'IIA':>6} {'factual':>8}  verdict",
        f"{'-' * 16} {'-' * 17} {'-' * 6} {'-' * 8}  {'-' * 8}",
    ]
    for r in result.das:
        verdict = "aligned" if r.iia >= 0.95 else "rejected"
        lines.append(f"{r.name:<16} {r.description:<17} {r.iia:>6.3f} {r.factual_agreement:>8.3f}  {verdict}")
    lines += [
        "(halves: the variable each half of the rotated space is hypothesised to hold;",
        " factual: how often the hypothesis' causal model gives the network's answer on the bases)",
    ]
    if result.iit is not None:
        i = result.iit
        lines += [
            "",
            f"IIT (fresh model, halves of layer {c.das_layer} trained to carry WX and YZ): "
            f"IIA {i.iia_before:.3f} -> {i.iia:.3f}, task accuracy {i.task_accuracy:.3f}",
        ]
    lines.append(f"total time {result.seconds:.1f}s")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> HierarchicalEqualityResult:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="the smaller configuration of the tests")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--progress", action="store_true", help="show the trainers' progress bars")
    parser.add_argument("--no-iit", action="store_true", help="skip interchange intervention training")
    parser.add_argument("--device", default="cpu", help="torch device to train on (default cpu)")
    args = parser.parse_args(argv)
    # The networks are tiny: one thread avoids the cost of synchronising several on each op.
    torch.set_num_threads(1)
    config = evolve(FAST if args.fast else DEFAULT, seed=args.seed)
    result = run(config, iit=not args.no_iit, progress=args.progress, log=print, device=args.device)
    print()
    print(format_table(result))
    return result


if __name__ == "__main__":
    main()
