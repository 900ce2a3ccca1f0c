"""The outputs of vene's reference models: a dict that is also indexed by position.

Like a Hugging Face ``ModelOutput``, ``out["logits"]``, ``out.logits`` and ``out[0]`` all work;
the order is ``loss`` (when computed), then ``logits``, then the hidden states, so ``out[0]`` is
the loss when labels were given and the logits otherwise (what trainers written for transformers
models read). Core stays free of transformers: this is a plain ``dict``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ModelOutput", "MLPModelOutput", "GRUModelOutput", "output"]


class ModelOutput(dict):  # type: ignore[type-arg]  # values are tensors or None
    """A dict of named outputs, also readable by attribute and by position."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, slice)):
            return list(self.values())[key]
        return super().__getitem__(key)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getitem__(name)
        except KeyError:
            raise AttributeError(name) from None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self.values())


def output(loss: Any = None, **values: Any) -> ModelOutput:
    """``loss`` first when present, then ``values`` in order."""
    out = ModelOutput()
    if loss is not None:
        out["loss"] = loss
    out.update(values)
    return out


# pyvene's names for its models' output records
MLPModelOutput = ModelOutput
GRUModelOutput = ModelOutput
