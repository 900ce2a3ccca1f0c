"""IntervenableModel methods that pyvene 0.1.8 has besides the core ones, as a mixin.

``IntervenableModel`` takes these by listing :class:`PyveneMethods` among its bases; each
works through the model's public surface (``interventions``, ``get_trainable_parameters``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["PyveneMethods", "build_intervenable_model"]


class PyveneMethods:
    """pyvene's extra methods: gradient switches for the interventions and the backend tag."""

    #: pyvene names its execution backend here ("native" or "ndif"); vene runs hooks natively.
    BACKEND = "native"

    def set_zero_grad(self) -> None:
        """Zero the gradients of every trainable intervention (not of the wrapped model)."""
        for module in self._pyvene_intervention_list():
            module.zero_grad(set_to_none=True)

    def disable_intervention_gradients(self) -> None:
        """Freeze every intervention's parameters (``requires_grad=False``).

        pyvene 0.1.8's method of this name does nothing; vene freezes them, as the name says.
        """
        for module in self._pyvene_intervention_list():
            for p in module.parameters():
                p.requires_grad_(False)

    def enable_intervention_gradients(self) -> None:
        """Undo :meth:`disable_intervention_gradients`."""
        for module in self._pyvene_intervention_list():
            for p in module.parameters():
                p.requires_grad_(True)

    def _pyvene_intervention_list(self) -> list[nn.Module]:
        table: Any = getattr(self, "interventions", {})
        values = table.values() if hasattr(table, "values") else table
        return [m for m in values if isinstance(m, nn.Module)]


def build_intervenable_model(config: Any, model: nn.Module, **kwargs: Any) -> Any:
    """pyvene's factory: an :class:`IntervenableModel` over ``model`` (vene has one backend)."""
    from ._model import IntervenableModel

    return IntervenableModel(config, model, **kwargs)
