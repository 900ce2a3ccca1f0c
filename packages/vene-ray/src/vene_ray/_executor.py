"""The Ray executor: sweep tasks on a pool of actors, each holding one copy of the model.

Ray is imported when a sweep runs, not when the plugin loads. The driver keeps every actor busy
with one task at a time (a free actor takes the next task), so slow and fast tasks balance out;
each result is handed to the caller as soon as it arrives, which is when vene's store writes it.
A worker process that dies is restarted by Ray (``max_restarts``, rebuilding the model) and its
task is run again (``max_task_retries``); an exception raised by a task is not retried and
reaches the caller with its own type.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from vene.errors import ConfigError
from vene.patching import PatchingResult, SweepTask, build_model, run_task

__all__ = ["RayExecutor", "SweepWorker"]

_OPTIONS = ("workers", "address", "num_cpus", "num_gpus", "max_restarts", "max_task_retries", "init_options")


class SweepWorker:
    """A Ray actor's body: builds the model once, then runs tasks on it.

    The factory arrives as ``[ObjectRef]`` (a reference the driver holds for the whole run, not
    resolved by Ray), so that an actor restarted after its process died can fetch it again.
    """

    def __init__(self, factory: list[Any]) -> None:
        import ray

        self.model = build_model(ray.get(factory[0]))

    def run(self, task: SweepTask) -> tuple[PatchingResult, float]:
        """The task's result and the seconds it took to compute."""
        start = time.perf_counter()
        result = run_task(self.model, task)
        return result, time.perf_counter() - start


class RayExecutor:
    """Runs sweep tasks on ``workers`` Ray actors (default: the cluster's CPUs / ``num_cpus``).

    ``address`` is the cluster to join when Ray is not initialised yet (None: ``RAY_ADDRESS`` or
    a new local cluster); ``init_options`` go to ``ray.init``. Each actor reserves ``num_cpus``
    CPUs and ``num_gpus`` GPUs. After a run, ``compute_seconds`` holds each task's compute time
    as measured inside its worker (keyed by task hash).
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        max_restarts: int = 3,
        max_task_retries: int = 3,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ConfigError(f"workers must be a positive int or None (one per CPU of the cluster), got {workers!r}.")
        for name, value in (("max_restarts", max_restarts), ("max_task_retries", max_task_retries)):
            if not isinstance(value, int) or value < -1:
                raise ConfigError(f"{name} must be an int >= -1 (-1: without limit), got {value!r}.")
        if num_cpus <= 0 and num_gpus <= 0:
            raise ConfigError("each worker needs some resource: num_cpus > 0 or num_gpus > 0.")
        self.workers = workers
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_restarts = max_restarts
        self.max_task_retries = max_task_retries
        self.init_options = dict(init_options or {})
        self.compute_seconds: dict[str, float] = {}

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RayExecutor:
        """Build from ``sweep(..., executor_options=...)``; unknown options are refused."""
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown} for executor='ray'; options: {', '.join(_OPTIONS)}.")
        return cls(**options)

    def _pool_size(self, ray: Any, n_tasks: int) -> int:
        if self.workers is not None:
            return min(self.workers, n_tasks)
        per = self.num_cpus if self.num_cpus > 0 else 1
        key, amount = ("CPU", per) if self.num_cpus > 0 else ("GPU", self.num_gpus)
        return max(1, min(n_tasks, int(ray.cluster_resources().get(key, 1) // amount)))

    def run(
        self,
        model_factory: Callable[[], nn.Module],
        tasks: Sequence[SweepTask],
        on_result: Callable[[SweepTask, PatchingResult], None],
        *,
        registry: Any = None,
    ) -> None:
        """Run ``tasks`` on a pool of actors; ``registry`` is not used (workers load their plugins)."""
        if not tasks:
            return
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, **self.init_options)
        actor_cls = ray.remote(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus,
            max_restarts=self.max_restarts, max_task_retries=self.max_task_retries,
        )(SweepWorker)
        factory_ref = ray.put(model_factory)  # held until the run ends: restarts read it again
        actors: list[Any] = [actor_cls.remote([factory_ref]) for _ in range(self._pool_size(ray, len(tasks)))]
        queue = list(reversed(tasks))
        pending: dict[Any, tuple[Any, SweepTask]] = {}

        def submit(actor: Any) -> None:
            if queue:
                task = queue.pop()
                pending[actor.run.remote(task)] = (actor, task)

        try:
            for actor in actors:
                submit(actor)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                actor, task = pending.pop(ready[0])
                result, seconds = ray.get(ready[0])
                self.compute_seconds[task.key] = seconds
                on_result(task, result)
                submit(actor)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
