"""PatchingResult: the labelled grid of scores a patching sweep returns, saved as plain JSON."""

from __future__ import annotations

import html
import itertools
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import attrs
import torch
from attrs import field, frozen
from torch import Tensor

from .._errors import ArtifactError, ConfigError

__all__ = ["PatchingResult"]

_SCHEMA = "vene.patching_result/1"


def _scores(value: Any) -> Tensor:
    return torch.as_tensor(value, dtype=torch.float32).detach().cpu()


def _str_tuple(dims: Sequence[str]) -> tuple[str, ...]:
    return tuple(dims)


@frozen
class PatchingResult:
    """Scores of a patching sweep over named dims, with coordinates, baselines and settings.

    ``scores[i, j, ...]`` is the metric with the site at ``coords[dims[0]][i]``,
    ``coords[dims[1]][j]``... patched. ``baselines`` holds the metric of the unpatched runs:
    ``{"base", "source"}`` for activation and attribution patching, ``{"clean", "corrupted"}``
    for causal tracing.
    """

    scores: Tensor = field(converter=_scores, eq=False)
    dims: tuple[str, ...] = field(converter=_str_tuple)
    coords: dict[str, list] = field(converter=lambda c: {k: list(v) for k, v in c.items()})
    tokens: list[str] | None = None
    baselines: dict[str, float] = field(factory=dict, converter=lambda b: {k: float(v) for k, v in b.items()})
    metric: str = ""
    kind: str = "custom"
    method: str = "activation_patching"
    settings: dict[str, Any] = field(factory=dict)

    def __attrs_post_init__(self) -> None:
        shape = tuple(len(self.coords.get(d, ())) for d in self.dims)
        if set(self.coords) != set(self.dims):
            raise ConfigError(f"PatchingResult: coords {sorted(self.coords)} must name exactly the dims {self.dims}.")
        if tuple(self.scores.shape) != shape:
            raise ConfigError(
                f"PatchingResult: scores have shape {tuple(self.scores.shape)} but the coords give {shape}."
            )

    # ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; ``scores`` as nested lists (NaN written as null)."""

        def clean(x: Any) -> Any:
            if isinstance(x, list):
                return [clean(v) for v in x]
            return None if isinstance(x, float) and math.isnan(x) else x

        return {
            "schema": _SCHEMA,
            "scores": clean(self.scores.tolist()),
            "dims": list(self.dims),
            "coords": {k: list(v) for k, v in self.coords.items()},
            "tokens": None if self.tokens is None else list(self.tokens),
            "baselines": dict(self.baselines),
            "metric": self.metric,
            "kind": self.kind,
            "method": self.method,
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PatchingResult:
        if d.get("schema", _SCHEMA) != _SCHEMA:
            raise ArtifactError(f"not a vene patching result (schema {d.get('schema')!r}, expected {_SCHEMA!r}).")

        def unclean(x: Any) -> Any:
            if isinstance(x, list):
                return [unclean(v) for v in x]
            return math.nan if x is None else x

        dims = tuple(d["dims"])
        coords = {k: list(v) for k, v in d["coords"].items()}
        scores = torch.tensor(unclean(d["scores"]), dtype=torch.float32)
        if scores.numel() == 0:
            scores = scores.reshape(tuple(len(coords[k]) for k in dims))
        return cls(
            scores=scores,
            dims=dims,
            coords=coords,
            tokens=d.get("tokens"),
            baselines=d.get("baselines", {}),
            metric=d.get("metric", ""),
            kind=d.get("kind", "custom"),
            method=d.get("method", "activation_patching"),
            settings=d.get("settings", {}),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the result as a JSON file (no pickle)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PatchingResult:
        """Read a result written by :meth:`save`."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ArtifactError(f"cannot read a patching result from {os.fspath(path)!r}: {e}") from e
        return cls.from_dict(data)

    # ---------------------------------------------------------------------------------------
    def with_tokens(self, tokens: Sequence[str]) -> PatchingResult:
        """A copy with the base prompt's tokens as strings."""
        return attrs.evolve(self, tokens=[str(t) for t in tokens])

    def _reference(self) -> tuple[float, float]:
        b = self.baselines
        if "clean" in b and "corrupted" in b:
            return b["corrupted"], b["clean"]
        if "base" in b and "source" in b:
            if self.settings.get("direction") == "noise":
                return b["source"], b["base"]
            return b["base"], b["source"]
        raise ConfigError("normalized() needs the baselines {'base', 'source'} or {'clean', 'corrupted'}.")

    def normalized(self) -> Tensor:
        """``(scores - start) / (target - start)``: 0 = the unpatched run, 1 = fully restored.

        ``start``/``target`` are the corrupted/clean baselines (causal tracing) or the base/source
        ones (patching; swapped for ``direction="noise"``).
        """
        start, target = self._reference()
        denom = target - start
        if denom == 0:
            raise ConfigError("normalized(): the two baselines are equal, so the scale is undefined.")
        return (self.scores - start) / denom

    def to_pandas(self) -> Any:
        """Long form: one row per cell, columns ``dims`` (+ ``token``) + ``score``."""
        try:
            import pandas as pd
        except ImportError:
            raise ConfigError("to_pandas() needs pandas, which is not installed: pip install pandas") from None
        rows = []
        axes = [self.coords[d] for d in self.dims]
        flat = self.scores.reshape(-1).tolist()
        for cell, score in zip(itertools.product(*axes), flat):
            row = dict(zip(self.dims, cell))
            if self.tokens is not None and "position" in row:
                p = row["position"]
                row["token"] = self.tokens[p] if isinstance(p, int) and 0 <= p < len(self.tokens) else None
            row["score"] = score
            rows.append(row)
        cols = list(self.dims) + (["token"] if self.tokens is not None and "position" in self.dims else []) + ["score"]
        return pd.DataFrame(rows, columns=cols)

    def _label(self, dim: str, value: Any) -> str:
        if dim == "position" and self.tokens is not None and isinstance(value, int) and 0 <= value < len(self.tokens):
            return f"{value} {self.tokens[value]}"
        return str(value)

    def _repr_html_(self) -> str:
        esc = html.escape
        title = f"{esc(self.method)} · {esc(self.kind)} · {esc(self.metric)}"
        base = ", ".join(f"{esc(k)}={v:.4g}" for k, v in self.baselines.items())
        s = self.scores
        if s.dim() == 1:
            s = s.unsqueeze(0)
            rows_dim, cols_dim, rows, cols = "", self.dims[0], [""], self.coords[self.dims[0]]
        elif s.dim() == 2:
            rows_dim, cols_dim = self.dims
            rows, cols = self.coords[rows_dim], self.coords[cols_dim]
        else:
            rows_dim, cols_dim = self.dims[-2:]
            rows, cols = self.coords[rows_dim], self.coords[cols_dim]
            s = s.reshape(-1, *s.shape[-2:])[0]
            title += f" (first {' × '.join(self.dims[:-2])} slice)"
        head = "".join(f"<th>{esc(self._label(cols_dim, c))}</th>" for c in cols)
        body = "".join(
            f"<tr><th>{esc(rows_dim)} {esc(str(r))}</th>"
            + "".join(f"<td>{v:.3g}</td>" for v in s[i].tolist())
            + "</tr>"
            for i, r in enumerate(rows)
        )
        return (
            f"<div><b>{title}</b><br><small>{base}</small>"
            f"<table><tr><th></th>{head}</tr>{body}</table></div>"
        )
