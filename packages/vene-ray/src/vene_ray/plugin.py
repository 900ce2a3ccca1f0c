"""vene-ray's entry point: the ``"ray"`` sweep executor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vene import hookimpl

if TYPE_CHECKING:
    from collections.abc import Mapping


@hookimpl
def vene_sweep_executor(name: str, options: Mapping[str, Any]) -> Any:
    if name != "ray":
        return None
    from ._executor import RayExecutor

    return RayExecutor.from_options(options)
