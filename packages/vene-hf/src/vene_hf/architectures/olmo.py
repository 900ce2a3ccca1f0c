"""OLMo (``OlmoModel``, ``OlmoForCausalLM``...): Llama's layout.

q/k/v clipping (``clip_qkv``) happens after the projections: ``query_output`` is before it.
"""

from __future__ import annotations

from ._family import Family, Stack, decoder_components, num_hidden_layers

__all__ = ["FAMILY", "COMPONENTS"]

COMPONENTS = decoder_components()

FAMILY = Family(name="olmo", model_types=("olmo",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
