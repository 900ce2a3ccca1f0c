"""Sweeps over a dataset of prompts: tasks, executors, a resumable store, and the gathered result.

:func:`sweep` splits (prompts x layer groups) into :class:`SweepTask` records, runs them through
an executor found by name with the ``vene_sweep_executor`` hook (core's ``"local"`` one runs them
in this process; vene-ray's ``"ray"`` one on actors of a Ray cluster), stores each task's result
as it arrives (one JSON file per task, named by a hash of the task) and gathers them into one
:class:`PatchingResult` with a leading ``prompt`` dim. Tasks already in the store are not run
again, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import torch
from attrs import field, frozen
from torch import Tensor, nn

from .._errors import ConfigError, MissingPluginError
from ._result import PatchingResult

__all__ = [
    "SweepTask",
    "SweepExecutor",
    "LocalExecutor",
    "sweep",
    "run_task",
    "build_model",
    "make_tasks",
    "gather",
    "get_executor",
    "task_key",
]

METHODS = ("activation_patching", "causal_tracing")
_REQUIRED = {"activation_patching": ("base", "source"), "causal_tracing": ("inputs", "subject_positions")}
_KEY_SCHEMA = "vene.sweep_task/1"


@frozen
class SweepTask:
    """One unit of work: ``method`` on prompt ``prompt`` with keyword arguments ``kwargs``.

    ``kwargs`` are what the sweep function takes besides the model (``base``, ``source``,
    ``metric``, ``layers``, ``kind``...). ``key`` is a hash of the method, the arguments and the
    model factory: the file name of the task's result in a store.
    """

    prompt: int
    method: str
    kwargs: dict[str, Any] = field(eq=False)
    key: str


@runtime_checkable
class SweepExecutor(Protocol):
    """Runs sweep tasks; what the ``vene_sweep_executor`` hook returns.

    ``run`` builds the model with ``model_factory()`` (once per worker), runs every task with
    :func:`run_task` and calls ``on_result(task, result)`` in the calling process as each one
    finishes, in any order. ``registry`` is the plugins to resolve sites with where the tasks run
    in this process (workers elsewhere use the plugins installed there).
    """

    def run(
        self,
        model_factory: Callable[[], nn.Module],
        tasks: Sequence[SweepTask],
        on_result: Callable[[SweepTask, PatchingResult], None],
        *,
        registry: Any = None,
    ) -> None: ...


def build_model(model_factory: Callable[[], nn.Module]) -> nn.Module:
    """``model_factory()`` in eval mode, refused unless it is a torch module (each worker calls it once)."""
    model = model_factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"the model factory returned {type(model).__name__}, not a torch.nn.Module; pass a function "
            "that builds the model (e.g. functools.partial(AutoModelForCausalLM.from_pretrained, 'gpt2'))."
        )
    return model.eval()


def run_task(model: nn.Module, task: SweepTask, registry: Any = None) -> PatchingResult:
    """Run one task on a built model (what every executor calls, wherever it runs)."""
    from ._api import activation_patching, causal_tracing

    fn: Callable[..., PatchingResult] = activation_patching if task.method == "activation_patching" else causal_tracing
    with torch.no_grad():
        return fn(model, registry=registry, **task.kwargs)


class LocalExecutor:
    """Core's executor: builds the model once and runs the tasks one after another, here."""

    def run(
        self,
        model_factory: Callable[[], nn.Module],
        tasks: Sequence[SweepTask],
        on_result: Callable[[SweepTask, PatchingResult], None],
        *,
        registry: Any = None,
    ) -> None:
        if not tasks:
            return
        model = build_model(model_factory)
        for task in tasks:
            on_result(task, run_task(model, task, registry))


def get_executor(name: str | SweepExecutor, options: Mapping[str, Any] | None = None, registry: Any = None) -> SweepExecutor:
    """The executor named ``name`` (through ``vene_sweep_executor``), or ``name`` itself when it is one."""
    if not isinstance(name, str):
        if isinstance(name, SweepExecutor):
            return name
        raise ConfigError(f"executor must be a name ('local', 'ray') or an object with run(...), got {type(name).__name__}.")
    from ..plugins import default_registry

    pm = (registry or default_registry()).pm
    found = pm.hook.vene_sweep_executor(name=name, options=dict(options or {}))
    if found is None:
        hint = " Install vene-ray (pip install vene-ray) for executor='ray'." if name == "ray" else ""
        raise MissingPluginError(
            f"no sweep executor named {name!r} is installed; core provides 'local'.{hint} A plugin adds "
            "executors through the vene_sweep_executor hook."
        )
    return found


# ---------------------------------------------------------------------------------------------
# hashing a task: a canonical, JSON-able description of every argument


def _canonical(x: Any) -> Any:
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return repr(x)
    if isinstance(x, Tensor):
        t = x.detach().cpu().contiguous()
        digest = hashlib.sha256(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"").hexdigest()
        return {"tensor": digest, "shape": list(t.shape), "dtype": str(t.dtype)}
    if isinstance(x, Mapping):
        return {"map": sorted([str(k), _canonical(v)] for k, v in x.items())}
    if isinstance(x, (list, tuple, range)):
        return [_canonical(v) for v in x]
    if attrs.has(type(x)):
        return {"attrs": _qualname(type(x)), "fields": {a.name: _canonical(getattr(x, a.name)) for a in attrs.fields(type(x))}}
    func = getattr(x, "func", None)
    if func is not None and hasattr(x, "args") and hasattr(x, "keywords"):  # functools.partial
        return {"partial": _canonical(func), "args": _canonical(list(x.args)), "keywords": _canonical(dict(x.keywords))}
    if callable(x):
        return {"callable": _qualname(x)}
    raise ConfigError(
        f"cannot describe a sweep argument of type {type(x).__name__} for the task store; use tensors, "
        "numbers, strings, lists, dicts, attrs records (the metrics) or named functions."
    )


def _qualname(x: Any) -> str:
    return f"{getattr(x, '__module__', '?')}.{getattr(x, '__qualname__', type(x).__qualname__)}"


def task_key(method: str, kwargs: Mapping[str, Any], model_factory: Any) -> str:
    """A hash of a task: the same method, arguments and model factory give the same key."""
    desc = {"schema": _KEY_SCHEMA, "method": method, "kwargs": _canonical(kwargs), "model": _canonical(model_factory)}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# splitting and gathering


def _item_kwargs(item: Any, i: int, method: str) -> dict[str, Any]:
    if method == "activation_patching" and isinstance(item, tuple) and len(item) == 2:
        return {"base": item[0], "source": item[1]}
    if not isinstance(item, Mapping):
        form = "(base, source) or {'base': ..., 'source': ...}" if method == "activation_patching" else "{'inputs': ..., 'subject_positions': [...]}"
        raise ConfigError(f"dataset[{i}] is a {type(item).__name__}; each item of a {method} sweep is {form}.")
    missing = [k for k in _REQUIRED[method] if k not in item]
    if missing:
        raise ConfigError(f"dataset[{i}] lacks {missing}; each item of a {method} sweep needs {list(_REQUIRED[method])}.")
    return dict(item)


def make_tasks(
    dataset: Sequence[Any],
    model_factory: Any,
    *,
    method: str = "activation_patching",
    metric: Any = None,
    layers_per_task: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[SweepTask]:
    """The tasks of a sweep: each prompt, split into groups of ``layers_per_task`` layers."""
    if method not in METHODS:
        raise ConfigError(f"unknown sweep method {method!r}; use one of {', '.join(METHODS)}.")
    opts = dict(options or {})
    for bad in ("registry", "progress"):
        if bad in opts:
            raise ConfigError(f"{bad}= is not a per-task option of a sweep; pass it to sweep() itself.")
    layers = opts.pop("layers", None)
    if layers_per_task is not None:
        if not isinstance(layers_per_task, int) or layers_per_task < 1:
            raise ConfigError(f"layers_per_task must be a positive int, got {layers_per_task!r}.")
        if layers is None:
            raise ConfigError("layers_per_task needs the layers to split: pass layers=range(n_layers).")
        layers = [int(x) for x in layers]
        groups: list[list[int] | None] = [layers[i:i + layers_per_task] for i in range(0, len(layers), layers_per_task)]
    else:
        groups = [None if layers is None else [int(x) for x in layers]]
    if len(dataset) == 0:
        raise ConfigError("the dataset is empty; give at least one prompt.")
    tasks = []
    for i, item in enumerate(dataset):
        kw = {**opts, **_item_kwargs(item, i, method)}
        if kw.get("metric") is None:
            if metric is None:
                raise ConfigError(f"dataset[{i}] has no metric; pass metric= to sweep() or a 'metric' in each item.")
            kw["metric"] = metric
        for group in groups:
            task_kw = kw if group is None else {**kw, "layers": group}
            tasks.append(SweepTask(prompt=i, method=method, kwargs=task_kw, key=task_key(method, task_kw, model_factory)))
    return tasks


def _common(values: list[Any]) -> Any:
    return values[0] if all(v == values[0] for v in values) else values


def gather(tasks: Sequence[SweepTask], results: Mapping[str, PatchingResult]) -> PatchingResult:
    """One result with a leading ``prompt`` dim from each task's result (layer groups concatenated).

    ``baselines`` are the means over prompts; ``settings["prompt_baselines"]`` holds each prompt's.
    A setting (or the metric's name) that differs between prompts is kept as a list, one per prompt.
    """
    by_prompt: dict[int, list[PatchingResult]] = {}
    for t in tasks:
        by_prompt.setdefault(t.prompt, []).append(results[t.key])
    per_prompt: list[PatchingResult] = []
    for p in sorted(by_prompt):
        parts = by_prompt[p]
        first = parts[0]
        if len(parts) > 1:
            axis = first.dims.index("layer")
            coords = dict(first.coords)
            coords["layer"] = [x for r in parts for x in r.coords["layer"]]
            first = attrs.evolve(first, scores=torch.cat([r.scores for r in parts], dim=axis), coords=coords)
        per_prompt.append(first)
    ref = per_prompt[0]
    for p, r in enumerate(per_prompt):
        if r.dims != ref.dims or r.coords != ref.coords:
            raise ConfigError(
                f"prompt {p} has the grid {r.dims} {r.coords}, prompt 0 has {ref.dims} {ref.coords}; prompts of a "
                "sweep must share their grid (the same length and positions). Sweep groups of equal length apart."
            )
    keys = list(ref.baselines)
    prompt_baselines = {k: [r.baselines.get(k, math.nan) for r in per_prompt] for k in keys}
    settings_keys = list(ref.settings)
    settings = {k: _common([r.settings.get(k) for r in per_prompt]) for k in settings_keys}
    settings["prompt_baselines"] = prompt_baselines
    metric = _common([r.metric for r in per_prompt])
    if isinstance(metric, list):
        settings["metrics"] = metric
        metric = "per-prompt"
    return PatchingResult(
        scores=torch.stack([r.scores for r in per_prompt]),
        dims=("prompt", *ref.dims),
        coords={"prompt": list(range(len(per_prompt))), **ref.coords},
        tokens=None,
        baselines={k: sum(v) / len(v) for k, v in prompt_baselines.items()},
        metric=metric,
        kind=ref.kind,
        method=ref.method,
        settings=settings,
    )


# ---------------------------------------------------------------------------------------------
# the store


def _save_atomic(result: PatchingResult, path: pathlib.Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    os.close(fd)
    try:
        result.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sweep(
    dataset: Sequence[Any],
    model_factory: Callable[[], nn.Module],
    metric: Any = None,
    *,
    method: str = "activation_patching",
    executor: str | SweepExecutor = "local",
    executor_options: Mapping[str, Any] | None = None,
    store: str | os.PathLike[str] | None = None,
    layers_per_task: int | None = None,
    registry: Any = None,
    **options: Any,
) -> PatchingResult:
    """Run ``method`` on every prompt of ``dataset``; return the results stacked along ``prompt``.

    Each item of ``dataset`` is ``(base, source)`` or a dict of the method's keyword arguments
    (``{"base", "source"}`` for activation patching, ``{"inputs", "subject_positions"}`` for causal
    tracing, plus an optional per-prompt ``"metric"`` and other options); ``options`` (``kind=``,
    ``layers=``, ``window=``...) apply to every prompt. ``model_factory()`` builds the model (once
    per worker): a picklable function, not a live model. ``layers_per_task`` splits each prompt's
    grid into groups of that many layers (needs ``layers=``). ``executor`` is ``"local"``,
    ``"ray"`` (vene-ray) or an executor object; ``executor_options`` go to its hook. With
    ``store=dir``, each task's result is written to ``dir/<task hash>.json`` as it arrives and
    tasks found there are not run again. See docs/scale_out.md.
    """
    if isinstance(model_factory, nn.Module) or not callable(model_factory):
        raise ConfigError(
            f"model_factory must be a function that builds the model, got {type(model_factory).__name__}; "
            "workers build their own copy (e.g. functools.partial(AutoModelForCausalLM.from_pretrained, 'gpt2'))."
        )
    tasks = make_tasks(dataset, model_factory, method=method, metric=metric, layers_per_task=layers_per_task, options=options)
    run = get_executor(executor, executor_options, registry)
    root = None if store is None else pathlib.Path(store)
    results: dict[str, PatchingResult] = {}
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        for t in tasks:
            path = root / f"{t.key}.json"
            if t.key not in results and path.exists():
                results[t.key] = PatchingResult.load(path)

    def on_result(task: SweepTask, result: PatchingResult) -> None:
        results[task.key] = result
        if root is not None:
            _save_atomic(result, root / f"{task.key}.json")

    todo = list({t.key: t for t in tasks if t.key not in results}.values())
    run.run(model_factory, todo, on_result, registry=registry)
    missing = [t.key for t in todo if t.key not in results]
    if missing:
        raise ConfigError(f"the executor returned without the results of {len(missing)} task(s); run the sweep again to resume.")
    return gather(tasks, results)
