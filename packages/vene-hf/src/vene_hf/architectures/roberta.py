"""RoBERTa (``RobertaModel``, ``RobertaForMaskedLM``, ``RobertaForSequenceClassification``...).

The layer layout of BERT (see ``bert``): same module paths, same meaning of each component.
"""

from __future__ import annotations

from ._family import Family, Stack, num_hidden_layers
from .bert import encoder_layer_components

__all__ = ["FAMILY", "COMPONENTS"]

COMPONENTS = encoder_layer_components()

FAMILY = Family(name="roberta", model_types=("roberta",), stacks=(Stack(COMPONENTS, num_hidden_layers),))
