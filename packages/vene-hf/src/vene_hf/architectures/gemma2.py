"""Gemma 2 (``Gemma2Model``, ``Gemma2ForCausalLM``...): Gemma with extra norms and logit soft-capping.

``attention_output``/``mlp_output`` are the attention and MLP modules' outputs, before the
post-attention / post-feed-forward norms that Gemma 2 applies ahead of the residual sum. The
attention soft-capping is applied by the eager attention that ``attention_weight`` runs.
"""

from __future__ import annotations

from ._family import Family, Stack, decoder_components, num_hidden_layers

__all__ = ["FAMILY", "COMPONENTS"]

COMPONENTS = decoder_components()

FAMILY = Family(name="gemma2", model_types=("gemma2",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
