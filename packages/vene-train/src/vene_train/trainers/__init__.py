"""vene-train's trainers: DAS (and Boundless DAS) and interchange intervention training.

Each trainer is built as ``cls(intervenable_model, **options)`` and registered under its
``type_name`` through the ``vene_trainers`` hook: ``vene.default_registry().trainer("das")``.
"""

from ._base import (
    Trainer,
    TrainerError,
    TrainingHistory,
    default_compute_loss,
    default_compute_metrics,
    extract_logits,
    lr_factor,
    temperature_schedule,
)
from ._das import DASTrainer
from ._iit import IITTrainer

__all__ = [
    "TRAINERS",
    "Trainer",
    "TrainerError",
    "TrainingHistory",
    "DASTrainer",
    "IITTrainer",
    "default_compute_loss",
    "default_compute_metrics",
    "extract_logits",
    "lr_factor",
    "temperature_schedule",
]

TRAINERS: tuple[type[Trainer], ...] = (DASTrainer, IITTrainer)
