"""vene's reference models: small MLP and GRU classifiers with abstract components."""

from .gru import GRUConfig, GRUForClassification, GRUModel, create_gru, create_gru_classifier
from .mlp import MLPConfig, MLPForClassification, MLPModel, create_mlp_classifier

__all__ = [
    "MLPConfig",
    "MLPModel",
    "MLPForClassification",
    "create_mlp_classifier",
    "GRUConfig",
    "GRUModel",
    "GRUForClassification",
    "create_gru",
    "create_gru_classifier",
]
