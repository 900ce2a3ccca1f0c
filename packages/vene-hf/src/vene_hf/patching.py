"""The patching runner for Hugging Face models: prefix reuse through the KV cache, logits kept.

:class:`HFRunner` is what ``vene.patching`` sweeps use for a transformers model (through the
``vene_patching_runner`` hook). For a causal LM it runs the unpatched input once with the cache
on, then runs each chunk of patched runs on positions ``offset:`` only, with layer ``k``'s cache
holding the prefix's keys and values repeated to that layer's row count (the executor grows the
batch between blocks). It asks the model for the logits at the metric's position only, through
``logits_to_keep`` (transformers >= 4.45 and 5.x) or ``num_logits_to_keep`` (earlier 4.x).
Encoders (BERT...) and encoder-decoders get plain full runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import Any, cast

from torch import Tensor, nn

from vene.patching import Runner, logits_of

__all__ = ["HFRunner", "runner_for"]

_SLICED = ("input_ids", "inputs_embeds", "token_type_ids", "position_ids")


@functools.cache
def _forward_params(cls: Any) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def _params(cls: type[nn.Module]) -> frozenset[str]:
    """The parameter names of a model class's forward (memoized per class)."""
    return _forward_params(cast(Any, cls))  # classes are hashable; typeshed's Hashable check says otherwise


def _kv(cache: Any, i: int) -> tuple[Tensor, Tensor]:
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return layers[i].keys, layers[i].values
    if hasattr(cache, "key_cache"):
        return cache.key_cache[i], cache.value_cache[i]
    return cache[i][0], cache[i][1]


def _n_cached(cache: Any) -> int:
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return len(layers)
    if hasattr(cache, "key_cache"):
        return len(cache.key_cache)
    return len(cache)


class HFRunner(Runner):
    """Runs a transformers model; reuses the KV cache of the unpatched prefix for causal LMs."""

    def _keep_kw(self, model: nn.Module, keep: int | None) -> dict[str, Any]:
        params = _params(type(model))
        if keep is None:
            return {}
        for name in ("logits_to_keep", "num_logits_to_keep"):
            if name in params:
                return {name: int(keep)}
        return {}

    def _cache_kw(self, model: nn.Module) -> str:
        return "cache" if "cache" in _params(type(model)) else "past_key_values"

    def supports_prefix(self, model: nn.Module, inputs: Any) -> bool:
        config = getattr(model, "config", None)
        if config is None or getattr(config, "is_encoder_decoder", False):
            return False
        can_generate = getattr(model, "can_generate", None)
        if not (callable(can_generate) and can_generate()):
            return False
        if getattr(config, "sliding_window", None) or getattr(config, "layer_types", None) and any(
            t != "full_attention" for t in config.layer_types
        ):
            return False  # sliding-window caches drop old positions; run those models in full
        if not isinstance(inputs, Mapping) or not ("input_ids" in inputs or "inputs_embeds" in inputs):
            return False
        params = _params(type(model))
        return "use_cache" in params and self._cache_kw(model) in params

    def run(self, model: nn.Module, inputs: Any, *, keep: int | None = None) -> Tensor:
        extra = self._keep_kw(model, keep)
        if "use_cache" in _params(type(model)):
            extra["use_cache"] = False
        return logits_of(model(**inputs, **extra))

    def prefill(self, model: nn.Module, inputs: Any, *, keep: int | None = None) -> tuple[Tensor, Any]:
        out = model(**inputs, use_cache=True, **self._keep_kw(model, keep))
        cache = getattr(out, "cache", None)
        if cache is None:
            cache = getattr(out, "past_key_values", None)
        if cache is None:
            raise RuntimeError(f"{type(model).__name__} returned no cache with use_cache=True.")
        return logits_of(out), [_kv(cache, i) for i in range(_n_cached(cache))]

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
        if offset == 0:
            return self.run(model, inputs, keep=keep)
        from transformers import DynamicCache

        try:
            cache = DynamicCache(config=cast(Any, model.config))
        except TypeError:  # transformers 4.x before caches took a config
            cache = DynamicCache()
        for i, (k, v) in enumerate(state):
            n = rows_per_layer[i] if i < len(rows_per_layer) else rows_per_layer[-1]
            cache.update(k[:1, :, :offset].expand(n, -1, -1, -1), v[:1, :, :offset].expand(n, -1, -1, -1), i)
        sliced = {k: (v[:, offset:] if k in _SLICED and isinstance(v, Tensor) else v) for k, v in inputs.items()}
        extra = {self._cache_kw(model): cache, "use_cache": True, **self._keep_kw(model, keep)}
        return logits_of(model(**sliced, **extra))


def runner_for(model: nn.Module) -> HFRunner | None:
    """An :class:`HFRunner` for a transformers model, else None."""
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - vene-hf depends on transformers
        return None
    return HFRunner() if isinstance(model, PreTrainedModel) else None
