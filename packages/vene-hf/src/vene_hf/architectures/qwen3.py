"""Qwen3 (``Qwen3Model``, ``Qwen3ForCausalLM``...): Llama's layout, with per-head q/k norms.

``query_output``/``key_output`` are the projections' outputs, before the norms and rotary embeddings.
"""

from __future__ import annotations

from ._family import Family, Stack, decoder_components, num_hidden_layers

__all__ = ["FAMILY", "COMPONENTS"]

COMPONENTS = decoder_components()

FAMILY = Family(name="qwen3", model_types=("qwen3",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
