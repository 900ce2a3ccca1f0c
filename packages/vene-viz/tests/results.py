"""A stand-in with exactly the fields of ``vene.patching.PatchingResult`` (the patching
contract), built from the sweeps of conftest.py. vene-viz reads results by attributes only, so
the tests need nothing from the class itself."""

from __future__ import annotations

from typing import Any

import attrs
import torch


@attrs.frozen
class Result:
    scores: torch.Tensor
    dims: tuple[str, ...]
    coords: dict[str, list]
    tokens: list[str] | None
    baselines: dict[str, float]
    metric: str
    kind: str
    method: str
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": self.scores.tolist(), "dims": list(self.dims), "coords": self.coords,
            "tokens": self.tokens, "baselines": self.baselines, "metric": self.metric,
            "kind": self.kind, "method": self.method, "settings": self.settings,
        }


class OnlyToDict:
    """An object that offers the contract's JSON through to_dict() and nothing else."""

    def __init__(self, result: Result) -> None:
        self._result = result

    def to_dict(self) -> dict[str, Any]:
        return self._result.to_dict()


def layer_position(patching: dict, **changes: Any) -> Result:
    """The clean -> corrupt block-output sweep of conftest.py as an activation-patching result.

    Its scores there are normalised (0 = the corrupt run, 1 = the clean one), so the baselines
    are 0 and 1 exactly.
    """
    scores = patching["vene"]
    fields = dict(
        scores=scores, dims=("layer", "position"),
        coords={"layer": list(range(scores.shape[0])), "position": list(range(scores.shape[1]))},
        tokens=list(patching["tokens"]), baselines={"base": 0.0, "source": 1.0},
        metric="restored fraction of logit('Paris')", kind="resid", method="activation_patching",
        settings={"direction": "denoise", "window": 1},
    )
    fields.update(changes)
    return Result(**fields)


def heads(head_patching: dict) -> Result:
    grid = head_patching["vene"]
    return Result(
        scores=grid, dims=("layer", "head"),
        coords={"layer": list(range(grid.shape[0])), "head": list(range(grid.shape[1]))},
        tokens=None, baselines={"base": 0.0, "source": float(grid.max())},
        metric="Δ logit('Paris')", kind="heads", method="activation_patching",
        settings={"direction": "denoise"},
    )
