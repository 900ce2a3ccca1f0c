"""Artifacts: ``config.json`` plus ``interventions.safetensors``; stores for non-local places.

Nothing is ever unpickled and no module is imported by a name read from a file: intervention
types are looked up by registered name in the plugin registry.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["ArtifactStore", "CONFIG_NAME", "WEIGHTS_NAME", "MODEL_WEIGHTS_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "interventions.safetensors"
MODEL_WEIGHTS_NAME = "model.safetensors"


@runtime_checkable
class ArtifactStore(Protocol):
    """A non-local place artifacts go to and come from (a Hub repo, a bucket...)."""

    def fetch(self, location: str, **options: Any) -> str:
        """Make the artifact at ``location`` available locally; return the local directory."""
        ...

    def push(self, directory: str, location: str, **options: Any) -> str:
        """Upload the artifact in local ``directory`` to ``location``; return where it went."""
        ...
