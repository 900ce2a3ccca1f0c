"""vene-ray: patching sweeps over a dataset of prompts on a Ray cluster.

Installing the package registers the ``"ray"`` executor with vene:
``vene.patching.sweep(dataset, model_factory, metric, executor="ray")``. Each worker is a Ray
actor that builds the model once from the factory; tasks whose worker dies are retried by Ray.
"""

from __future__ import annotations

from ._executor import RayExecutor
from ._version import __version__

__all__ = ["RayExecutor", "__version__"]
