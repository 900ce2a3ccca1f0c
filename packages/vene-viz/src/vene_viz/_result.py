"""Reading a patching result (``vene.patching.PatchingResult`` or its JSON) into a checked view.

The visualizers read results by their public attributes only (``scores``, ``dims``, ``coords``,
``tokens``, ``baselines``, ``metric``, ``kind``, ``method``, ``settings``), or through
``to_dict()``, or from the dict that ``to_dict()`` and ``vene patch --json`` write, so vene-viz
needs no import of the class and works with results saved on another machine.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from ._data import as_array, as_number
from ._errors import DataShapeError, DataTypeError, LabelMismatchError

__all__ = ["ResultView", "read_result", "is_result"]

_FIELDS = ("scores", "dims", "coords")
_METHODS = {
    "activation_patching": "Activation patching",
    "causal_tracing": "Causal tracing",
    "attribution_patching": "Attribution patching",
}
_KINDS = {
    "resid": "residual stream",
    "mlp": "MLP outputs",
    "attn": "attention outputs",
    "heads": "attention heads",
}


@attrs.frozen
class ResultView:
    """What the visualizers draw from a patching result: scores as numpy, labels as text."""

    scores: np.ndarray
    dims: tuple[str, ...]
    coords: dict[str, list[Any]]
    tokens: list[str] | None
    baselines: dict[str, float]
    metric: str
    kind: str
    method: str
    settings: dict[str, Any]

    def token(self, position: Any) -> str | None:
        """The token at a position coordinate (an int, or a ``(source, base)`` pair), if known."""
        if self.tokens is None:
            return None
        if isinstance(position, (list, tuple)) and len(position) == 2:
            position = position[1]
        if isinstance(position, numbers.Integral):
            return self.tokens[int(position)]
        return None

    def tick(self, dim: str, value: Any) -> str:
        """An axis label: the token for a position when tokens are known, else the coordinate."""
        if dim == "position":
            token = self.token(value)
            if token is not None:
                return token
        if isinstance(value, (list, tuple)):
            return "→".join(str(v) for v in value)
        return str(value)

    def hover(self, dim: str, value: Any) -> str:
        """One line of a hover label, e.g. ``layer 3`` or ``position 2: ' Tower'``."""
        if dim == "position":
            token = self.token(value)
            shown = "→".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value
            return f"position {shown}: {token!r}" if token is not None else f"position {shown}"
        return f"{dim} {value}"

    def reference(self) -> tuple[str, float, str, float] | None:
        """``(name, value)`` of the unpatched run and of the run it is patched towards."""
        b = self.baselines
        if "corrupted" in b and "clean" in b:
            return "corrupted", b["corrupted"], "clean", b["clean"]
        if "base" in b and "source" in b:
            if self.settings.get("direction") == "noise":
                return "source", b["source"], "base", b["base"]
            return "base", b["base"], "source", b["source"]
        return None

    def title(self) -> str:
        """E.g. ``Causal tracing: residual stream`` with the window and direction when set."""
        method = _METHODS.get(self.method, self.method.replace("_", " ").capitalize() or "Patching")
        kind = "components" if self.kind == "custom" and "component" in self.dims else self.kind
        text = f"{method}: {_KINDS.get(kind, kind)}"
        extras = []
        window = self.settings.get("window")
        if isinstance(window, int) and window > 1:
            extras.append(f"window {window}")
        if self.method == "activation_patching" and self.settings.get("direction"):
            extras.append(str(self.settings["direction"]))
        return text + (f" ({', '.join(extras)})" if extras else "")

    def subtitle(self) -> str:
        """The metric and the baselines, e.g. ``target_prob; clean 0.83, corrupted 0.05``."""
        shown = ", ".join(f"{k} {v:.4g}" for k, v in self.baselines.items())
        return f"{self.metric}; {shown}" if shown else self.metric


def is_result(data: Any) -> bool:
    """Whether ``data`` looks like a patching result (or its dict) rather than a plain grid."""
    if isinstance(data, Mapping):
        return "scores" in data and ("dims" in data or "layers" in data)
    if hasattr(data, "detach") or isinstance(data, (np.ndarray, list, tuple, str, bytes)):
        return False
    return all(hasattr(data, f) for f in _FIELDS) or callable(getattr(data, "to_dict", None))


def _from_cli_json(d: Mapping[str, Any]) -> dict[str, Any]:
    """``vene patch/trace --json`` output (``layers``, ``tokens``, ``scores``, baselines) as fields."""
    scores = as_array(d["scores"], "the result's scores")
    positions = list(range(scores.shape[1])) if scores.ndim == 2 else []
    baselines = {k: d[k] for k in ("base", "source", "clean", "corrupted") if k in d}
    method = "causal_tracing" if "clean" in baselines else "activation_patching"
    return {
        "scores": scores, "dims": ("layer", "position"),
        "coords": {"layer": list(d["layers"]), "position": positions},
        "tokens": d.get("tokens"), "baselines": baselines, "metric": d.get("metric", "metric"),
        "kind": d.get("kind", "resid"), "method": method, "settings": {},
    }


def read_result(data: Any) -> ResultView:
    """A :class:`ResultView` of a PatchingResult-like object, its ``to_dict()``, or that dict."""
    if isinstance(data, Mapping):
        fields = dict(data) if "dims" in data else _from_cli_json(data)
    elif all(hasattr(data, f) for f in _FIELDS):
        fields = {f: getattr(data, f) for f in (*_FIELDS, "tokens", "baselines", "metric", "kind",
                                                 "method", "settings") if hasattr(data, f)}
    elif callable(getattr(data, "to_dict", None)):
        return read_result(data.to_dict())
    else:
        raise DataTypeError(
            f"a {type(data).__name__} is not a patching result: it needs the attributes "
            "scores, dims and coords (vene.patching.PatchingResult), or a to_dict() giving them."
        )
    scores = as_array(fields["scores"], "the result's scores")
    dims = fields["dims"]
    if isinstance(dims, str) or not isinstance(dims, Sequence) or not all(isinstance(d, str) for d in dims):
        raise DataTypeError(f"the result's dims must be a sequence of names, got {dims!r}.")
    dims = tuple(dims)
    coords_in = fields["coords"]
    if not isinstance(coords_in, Mapping):
        raise DataTypeError(f"the result's coords must be a dict dim -> labels, got {type(coords_in).__name__}.")
    missing = [d for d in dims if d not in coords_in]
    if missing:
        raise DataShapeError(
            f"the result's coords have no labels for dim {missing[0]!r}; coords name "
            f"{sorted(coords_in)} but dims are {dims}. Give one coordinate list per dim."
        )
    coords = {d: list(coords_in[d]) for d in dims}
    expected = tuple(len(coords[d]) for d in dims)
    if scores.shape != expected:
        raise DataShapeError(
            f"the result's scores have shape {tuple(scores.shape)}, but its coords give "
            f"{expected} for dims {dims}; scores[i][j]... must have one entry per coordinate."
        )
    if scores.size == 0:
        raise DataShapeError(f"the result's scores are empty (shape {tuple(scores.shape)}); nothing to plot.")
    tokens = fields.get("tokens")
    if tokens is not None:
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
            raise LabelMismatchError(
                f"the result's tokens must be a list of strings, one per prompt position, got "
                f"{type(tokens).__name__}; set them with result.with_tokens(tokens)."
            )
        tokens = [str(t) for t in tokens]
        for p in coords.get("position", []):
            base = p[1] if isinstance(p, (list, tuple)) and len(p) == 2 else p
            if isinstance(base, numbers.Integral) and not -len(tokens) <= int(base) < len(tokens):
                raise LabelMismatchError(
                    f"the result has {len(tokens)} tokens but a position coordinate {p!r}; "
                    "tokens must be the base prompt's tokens, one per position (set them with "
                    "result.with_tokens(tokenizer.convert_ids_to_tokens(ids)))."
                )
    baselines = fields.get("baselines") or {}
    if not isinstance(baselines, Mapping):
        raise DataTypeError(f"the result's baselines must be a dict name -> number, got {baselines!r}.")
    settings = fields.get("settings") or {}
    return ResultView(
        scores=scores, dims=dims, coords=coords, tokens=tokens,
        baselines={str(k): as_number(v, f"baseline {k!r}") for k, v in baselines.items()},
        metric=str(fields.get("metric") or "metric"), kind=str(fields.get("kind") or "custom"),
        method=str(fields.get("method") or ""),
        settings=dict(settings) if isinstance(settings, Mapping) else {},
    )
