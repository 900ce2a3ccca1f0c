"""How a patching sweep calls a model: full runs, and (where a plugin provides it) prefix reuse.

The executor only needs three things from a model: run it on inputs and return the logits, and,
for causal models whose plugin supports it, run the unpatched prefix once and then run only the
positions from an offset on, with the prefix's keys and values reused and a per-layer batch
size. :class:`Runner` is the plain version (no prefix reuse); vene-hf returns a runner with the
KV-cache path through the ``vene_patching_runner`` hook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from .._errors import ConfigError
from .._model import call_model

__all__ = ["Runner", "logits_of", "get_runner"]


def logits_of(out: Any) -> Tensor:
    """The logits in a model's output: a tensor, ``out["logits"]``, ``out.logits`` or ``out[0]``."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, Mapping) and "logits" in out:
        return out["logits"]
    logits = getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    raise ConfigError(
        f"cannot find logits in the model's output ({type(out).__name__}); patching needs a model "
        "that returns logits [batch, seq, vocab] (a tensor, a dict with 'logits', or .logits)."
    )


class Runner:
    """Runs a model for the patching executor. This base version has no prefix reuse.

    ``keep`` is how many of the last positions' logits the caller reads (None: all); a runner may
    return fewer positions than the input has, but always the last ``keep`` ones when it does.
    """

    def supports_prefix(self, model: nn.Module, inputs: Any) -> bool:
        """Whether :meth:`prefill` / :meth:`run_suffix` work for this model and input."""
        return False

    def seq_len(self, inputs: Any) -> int:
        """The number of positions of ``inputs`` (a dict with input_ids or inputs_embeds)."""
        if isinstance(inputs, Mapping):
            for key in ("input_ids", "inputs_embeds"):
                if key in inputs:
                    return int(inputs[key].shape[1])
            for v in inputs.values():
                if isinstance(v, Tensor) and v.dim() >= 2:
                    return int(v.shape[1])
        if isinstance(inputs, Tensor) and inputs.dim() >= 2:
            return int(inputs.shape[1])
        raise ConfigError("patching needs inputs with a sequence dimension (input_ids [1, seq], ...).")

    def run(self, model: nn.Module, inputs: Any, *, keep: int | None = None) -> Tensor:
        """A full run; returns logits ``[batch, positions, vocab]``."""
        return logits_of(call_model(model, inputs))

    def prefill(self, model: nn.Module, inputs: Any, *, keep: int | None = None) -> tuple[Tensor, Any]:
        """A full run that also returns the state :meth:`run_suffix` reuses (the KV cache)."""
        raise NotImplementedError  # pragma: no cover - only called when supports_prefix is True

    def run_suffix(
        self,
        model: nn.Module,
        inputs: Any,
        *,
        offset: int,
        rows_per_layer: Sequence[int],
        state: Any,
        keep: int | None = None,
    ) -> Tensor:
        """Run positions ``offset:`` of ``inputs`` (batch 1) on top of the prefix in ``state``.

        Layer ``k``'s attention sees ``rows_per_layer[k]`` rows (the executor grows the batch
        between blocks); the prefix's keys and values are repeated to that many rows.
        """
        raise NotImplementedError  # pragma: no cover

    def embedding_module(self, model: nn.Module) -> nn.Module | None:
        """The module whose output is the token embeddings (for causal tracing's noise)."""
        get = getattr(model, "get_input_embeddings", None)
        if callable(get):
            try:
                emb = get()
            except (NotImplementedError, AttributeError):
                emb = None
            if isinstance(emb, nn.Module):
                return emb
        return None


def get_runner(model: nn.Module, registry: Any = None) -> Runner:
    """The runner a plugin provides for ``model`` (``vene_patching_runner``), else :class:`Runner`."""
    from ..plugins import default_registry

    hook = getattr((registry or default_registry()).pm.hook, "vene_patching_runner", None)
    runner = hook(model=model) if hook is not None else None
    return runner if runner is not None else Runner()
