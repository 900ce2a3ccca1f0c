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
"""

from __future__ import annotations

import argparse

import torch
from attrs import evolve

from vene_train.tasks import hierarchical_equality as he


def main(argv: list[str] | None = None) -> he.HierarchicalEqualityResult:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="the smaller configuration of the tests")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--progress", action="store_true", help="show the trainers' progress bars")
    parser.add_argument("--no-iit", action="store_true", help="skip interchange intervention training")
    parser.add_argument("--device", default="cpu", help="torch device to train on (default cpu)")
    args = parser.parse_args(argv)
    # The networks are tiny: one thread avoids the cost of synchronising several on each op.
    torch.set_num_threads(1)
    config = evolve(he.FAST if args.fast else he.DEFAULT, seed=args.seed)
    result = he.run(config, iit=not args.no_iit, progress=args.progress, log=print, device=args.device)
    print()
    print(he.format_table(result))
    return result


if __name__ == "__main__":
    main()
