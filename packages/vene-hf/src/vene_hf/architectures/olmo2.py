"""OLMo 2 (``Olmo2Model``, ``Olmo2ForCausalLM``...): post-norm Llama layout.

OLMo 2 has no input norm: ``attention_input`` is the block input. ``attention_output`` and ``mlp_output``
are the modules' outputs, before the post-attention / post-feed-forward norms.
"""

from __future__ import annotations

from ._family import Family, Stack, decoder_components, num_hidden_layers

__all__ = ["FAMILY", "COMPONENTS"]

COMPONENTS = decoder_components()

FAMILY = Family(name="olmo2", model_types=("olmo2",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
