"""ESM protein language models (``EsmModel``, ``EsmForMaskedLM``, ``EsmForSequenceClassification``).

BERT's module paths (see ``bert``), but pre-norm: ``attention_input`` and ``mlp_input`` are the
normed inputs that attention and MLP read, and ``block_output = block_input + attention_output +
mlp_output``. pyvene's ESM table points ``attention_output``/``mlp_output`` at modules whose output
already includes the residual; here they are the sub-blocks' own contributions.
"""

from __future__ import annotations

from ._family import Family, Stack, num_hidden_layers
from .bert import encoder_layer_components

__all__ = ["FAMILY", "COMPONENTS"]

COMPONENTS = encoder_layer_components()

FAMILY = Family(name="esm", model_types=("esm",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
