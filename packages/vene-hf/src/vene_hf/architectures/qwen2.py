"""Qwen2 (``Qwen2Model``, ``Qwen2ForCausalLM``...): Llama's layout, with biased q/k/v projections."""

from __future__ import annotations

from ._family import Family, Stack, decoder_components, num_hidden_layers

__all__ = ["FAMILY", "COMPONENTS"]

COMPONENTS = decoder_components()

FAMILY = Family(name="qwen2", model_types=("qwen2",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
