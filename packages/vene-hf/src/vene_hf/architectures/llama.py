"""Llama (``LlamaModel``, ``LlamaForCausalLM``, ``LlamaForSequenceClassification``...).

Separate ``q_proj``/``k_proj``/``v_proj``; key and value heads are ``num_key_value_heads``
(grouped-query attention). ``query_output``/``key_output`` are the projections before rotary
embeddings. ``mlp_activation`` is ``act_fn``'s output, ``act(gate_proj(x))``, as in pyvene; the
gated product that ``down_proj`` reads is ``"model.layers[i].mlp.down_proj.input"``.
"""

from __future__ import annotations

from ._family import Family, Stack, decoder_components, num_hidden_layers

__all__ = ["FAMILY", "COMPONENTS"]

COMPONENTS = decoder_components()

FAMILY = Family(name="llama", model_types=("llama",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
