"""Patching sweeps: activation patching, causal tracing, attribution and path patching.

``import vene.patching as vp``. Every sweep returns a :class:`PatchingResult`; metrics are
callables ``metric(logits[batch, vocab]) -> Tensor[batch]`` read at ``metric.position``.
See docs/patching.md for the executor's design and measured cost.
"""

from __future__ import annotations

from ._api import activation_patching, causal_tracing
from ._attribution import attribution_patching, gradients, path_patching
from ._executor import Patch, Perturbation
from ._metrics import kl_divergence, logit_diff, target_prob
from ._result import PatchingResult
from ._runner import Runner, logits_of
from ._sweep import LocalExecutor, SweepExecutor, SweepTask, build_model, run_task, sweep

__all__ = [
    "activation_patching",
    "causal_tracing",
    "attribution_patching",
    "path_patching",
    "gradients",
    "logit_diff",
    "target_prob",
    "kl_divergence",
    "PatchingResult",
    "Runner",
    "Patch",
    "Perturbation",
    "logits_of",
    "sweep",
    "run_task",
    "build_model",
    "SweepTask",
    "SweepExecutor",
    "LocalExecutor",
]
