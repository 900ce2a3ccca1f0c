"""Mistral (``MistralModel``, ``MistralForCausalLM``...): Llama's layout, with a sliding-window mask.

The window lives in the attention mask, so every component reads as in Llama.
"""

from __future__ import annotations

from ._family import Family, Stack, decoder_components, num_hidden_layers

__all__ = ["FAMILY", "COMPONENTS"]

COMPONENTS = decoder_components()

FAMILY = Family(name="mistral", model_types=("mistral",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
