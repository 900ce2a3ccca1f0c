"""LLaVA (``LlavaModel``, ``LlavaForConditionalGeneration``): a vision tower, a projector, a language model.

The components are the language model's (``language_model.layers[i]``), with pyvene's plain
names (``block_output``, ``head_key_output``...) and dimensions read from ``text_config``; the
language model is Llama-style (Llama, Vicuna, Mistral...). The vision tower is reached with a
dotted path (``"model.vision_tower.vision_model.encoder.layers[0].output"``).
"""

from __future__ import annotations

from typing import Any

from ._family import Family, Stack, decoder_components, nested

__all__ = ["FAMILY", "COMPONENTS"]

COMPONENTS = nested(decoder_components(), path=("language_model",), config="text_config")


def _layers(c: Any) -> int:
    return int(c.text_config.num_hidden_layers)


FAMILY = Family(name="llava", model_types=("llava",), stacks=(Stack(COMPONENTS, _layers),))
