"""Sweeps on a local Ray cluster (2 CPUs, started here): the same result as the local executor,
a worker that dies mid-sweep changes nothing, and an interrupted sweep resumes from its store.

The model is a tiny GPT-2 built from a config by a factory (the workers build their own copy).
Each cell of the local run is first checked against a patched run written with plain forward
hooks, so the comparisons below are made against a result whose meaning is known.
"""

from __future__ import annotations

import functools
import os
import pathlib
import sys
from typing import Any

import pytest
import torch
from attrs import frozen

ray = pytest.importorskip("ray")
transformers = pytest.importorskip("transformers")

import vene  # noqa: E402 -- after the skips: this module needs ray and transformers
import vene.patching as vp  # noqa: E402
import vene_ray.plugin  # noqa: E402
from vene.plugins import Registry  # noqa: E402

# the workers unpickle this module's factory and metrics by value: the tests directory is not
# importable there
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

TARGET, OTHER = 11, 12


def build_gpt2(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=60, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config).eval()


FACTORY = functools.partial(build_gpt2, 0)


def dataset() -> list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(7)
    out = []
    for _ in range(3):
        clean = torch.randint(1, 60, (1, 6), generator=g)
        corrupt = clean.clone()
        corrupt[0, 2] = (clean[0, 2] + 17) % 59 + 1
        out.append(({"input_ids": corrupt}, {"input_ids": clean}))
    return out


@frozen
class FlaggedLogitDiff(vp.logit_diff):
    """``logit_diff``, which, while the file ``flag`` exists and the input is ``prompt_len`` long,
    first deletes it and then kills its process (``action="exit"``) or raises (``"raise"``)."""

    flag: str = ""
    action: str = "exit"

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.flag and os.path.exists(self.flag):
            if self.action == "exit":
                os.remove(self.flag)
                os._exit(1)
            raise RuntimeError("the flagged prompt fails")
        return super().__call__(logits)


def plain_patched(model: torch.nn.Module, run: dict, donor: dict, layer: int, pos: int) -> float:
    """The metric of ``run`` with block ``layer``'s output at ``pos`` taken from ``donor``."""
    block = model.transformer.h[layer]
    seen: dict[str, torch.Tensor] = {}
    h = block.register_forward_hook(lambda m, i, o: seen.__setitem__("x", o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        model(**donor)
    h.remove()

    def put(m: Any, i: Any, o: Any) -> Any:
        hidden = (o[0] if isinstance(o, tuple) else o).clone()
        hidden[:, pos] = seen["x"][:, pos]
        return (hidden, *o[1:]) if isinstance(o, tuple) else hidden

    h = block.register_forward_hook(put)
    try:
        with torch.no_grad():
            logits = model(**run).logits[0, -1]
    finally:
        h.remove()
    return float(logits[TARGET] - logits[OTHER])


@pytest.fixture(scope="module")
def cluster() -> Any:
    if ray.is_initialized():  # pragma: no cover - someone else's cluster
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def registry() -> Registry:
    pm = vene.get_plugin_manager()
    if pm.get_plugin("ray") is None:  # vene-ray is on the path but not installed as a distribution
        pm.register(vene_ray.plugin, name="ray")
    return Registry(pm)


@pytest.fixture(scope="module")
def reference(registry: Registry) -> vp.PatchingResult:
    """The local executor's result, each cell checked against a plain-hook run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker (1 CPU): the same kernels, bit for bit
    try:
        res = vp.sweep(dataset(), FACTORY, vp.logit_diff(TARGET, OTHER), layers=[0, 1], layers_per_task=1,
                       registry=registry)
    finally:
        torch.set_num_threads(threads)
    model = FACTORY()
    assert res.dims == ("prompt", "layer", "position") and res.scores.shape == (3, 2, 6)
    for p, (base, source) in enumerate(dataset()):
        for layer in range(2):
            for pos in range(6):
                assert abs(float(res.scores[p, layer, pos]) - plain_patched(model, base, source, layer, pos)) < 1e-5
    return res


class Counting:
    """Delegates to an executor and counts the tasks it is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.executed = 0

    def run(self, model_factory: Any, tasks: Any, on_result: Any, *, registry: Any = None) -> None:
        self.executed += len(tasks)
        self.inner.run(model_factory, tasks, on_result, registry=registry)


def test_ray_gives_the_local_result(cluster: Any, registry: Registry, reference: vp.PatchingResult) -> None:
    res = vp.sweep(dataset(), FACTORY, vp.logit_diff(TARGET, OTHER), layers=[0, 1], layers_per_task=1,
                   executor="ray", executor_options={"workers": 2}, registry=registry)
    assert torch.equal(res.scores, reference.scores)
    assert res.to_dict() == reference.to_dict()


def test_a_worker_killed_mid_sweep_changes_nothing(
    cluster: Any, registry: Registry, reference: vp.PatchingResult, tmp_path: pathlib.Path
) -> None:
    flag = tmp_path / "kill-once"
    flag.write_text("")
    metric = FlaggedLogitDiff(TARGET, OTHER, flag=str(flag), action="exit")
    executor = vene_ray.RayExecutor(workers=2, max_restarts=2, max_task_retries=2)
    res = vp.sweep(dataset(), FACTORY, metric, layers=[0, 1], layers_per_task=1, executor=executor, registry=registry)
    assert not flag.exists(), "no worker was killed"
    assert torch.equal(res.scores, reference.scores)
    assert res.baselines == reference.baselines


def test_an_interrupted_sweep_resumes_from_its_store(
    cluster: Any, registry: Registry, reference: vp.PatchingResult, tmp_path: pathlib.Path
) -> None:
    store = tmp_path / "store"
    flag = tmp_path / "fail"
    data = dataset()
    clean = vp.logit_diff(TARGET, OTHER)
    # the last prompt's metric fails while the flag exists: the sweep stops there
    items: list[dict[str, Any]] = [{"base": b, "source": s, "metric": clean} for b, s in data]
    items[-1]["metric"] = FlaggedLogitDiff(TARGET, OTHER, flag=str(flag), action="raise")
    flag.write_text("")
    first = Counting(vene_ray.RayExecutor(workers=2))
    with pytest.raises(RuntimeError, match="flagged prompt"):
        vp.sweep(items, FACTORY, layers=[0, 1], layers_per_task=1, executor=first, store=store, registry=registry)
    stored = len(list(store.glob("*.json")))
    # tasks go out in order, one per worker: the first failing task (prompt 2, layer 0) starts once
    # three have finished, with the fourth in flight
    assert first.executed == 6 and 3 <= stored <= 4

    flag.unlink()
    second = Counting(vene_ray.RayExecutor(workers=2))
    res = vp.sweep(items, FACTORY, layers=[0, 1], layers_per_task=1, executor=second, store=store, registry=registry)
    assert second.executed == 6 - stored
    assert torch.equal(res.scores, reference.scores)
    third = Counting(vene_ray.RayExecutor(workers=2))
    again = vp.sweep(items, FACTORY, layers=[0, 1], layers_per_task=1, executor=third, store=store, registry=registry)
    assert third.executed == 0 and torch.equal(again.scores, reference.scores)


def test_bad_options_are_refused(registry: Registry) -> None:
    with pytest.raises(vene.ConfigError, match="unknown option.*worker"):
        vp.sweep(dataset(), FACTORY, vp.logit_diff(TARGET, OTHER), executor="ray",
                 executor_options={"worker": 2}, registry=registry)
    with pytest.raises(vene.ConfigError, match="workers must be a positive int"):
        vene_ray.RayExecutor(workers=0)
    with pytest.raises(vene.ConfigError, match="a function that builds the model"):
        vp.sweep(dataset(), FACTORY(), vp.logit_diff(TARGET, OTHER), executor="ray", registry=registry)
