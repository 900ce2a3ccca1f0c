"""What an artifact store plugin needs: the artifact's file names and the store protocol.

An artifact is a directory holding ``config.json`` (:data:`CONFIG_NAME`) and
``interventions.safetensors`` (:data:`WEIGHTS_NAME`), and ``model.safetensors``
(:data:`MODEL_WEIGHTS_NAME`) when the wrapped model is saved too. A plugin that opens non-local
places (vene-hf's Hub store) returns an :class:`ArtifactStore` from ``vene_artifact_store``.
Writing and reading artifacts is ``IntervenableModel.save``/``load``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["ArtifactStore", "CONFIG_NAME", "WEIGHTS_NAME", "MODEL_WEIGHTS_NAME", "TRAINABLE_MODEL_WEIGHTS_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "interventions.safetensors"
MODEL_WEIGHTS_NAME = "model.safetensors"
TRAINABLE_MODEL_WEIGHTS_NAME = "model_trainable.safetensors"
"""``save_intervention(include_model=True)``: the wrapped model's parameters that need gradients."""


@runtime_checkable
class ArtifactStore(Protocol):
    """A non-local place artifacts go to and come from (a Hub repo, a bucket...)."""

    def fetch(self, location: str, **options: Any) -> str:
        """Make the artifact at ``location`` available locally; return the local directory."""
        ...

    def push(self, directory: str, location: str, **options: Any) -> str:
        """Upload the artifact in local ``directory`` to ``location``; return where it went."""
        ...
