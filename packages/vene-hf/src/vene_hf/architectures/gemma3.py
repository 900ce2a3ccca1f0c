"""Gemma 3, text (``Gemma3TextModel``, ``Gemma3ForCausalLM``; also inside the multimodal model).

Layout of Gemma 2, with q/k norms after the projections (``query_output`` is before the norm).
The text stack of ``Gemma3ForConditionalGeneration`` is found inside it (its ``language_model``).
"""

from __future__ import annotations

from ._family import Family, Stack, decoder_components, num_hidden_layers

__all__ = ["FAMILY", "COMPONENTS"]

COMPONENTS = decoder_components()

FAMILY = Family(name="gemma3", model_types=("gemma3_text",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
