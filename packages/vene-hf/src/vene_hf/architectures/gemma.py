"""Gemma (``GemmaModel``, ``GemmaForCausalLM``...): Llama's layout; ``head_dim`` read from the config.

Gemma's head width is not ``hidden_size / num_attention_heads`` (256 in the released models), so the
widths of the query/key/value and ``attention_value_output`` components come from ``head_dim``.
"""

from __future__ import annotations

from ._family import Family, Stack, decoder_components, num_hidden_layers

__all__ = ["FAMILY", "COMPONENTS"]

COMPONENTS = decoder_components()

FAMILY = Family(name="gemma", model_types=("gemma",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
