"""vene-train's trainers: DAS (and Boundless DAS) and interchange intervention training.

Each trainer is built as ``cls(intervenable_model, **options)`` (the options are a
:class:`TrainerOptions` record; IIT's an :class:`IITOptions`) and registered under its
``type_name`` through the ``vene_trainers`` hook: ``vene.default_registry().trainer("das")``.
"""

from ._base import Trainer
from ._callbacks import LoggingCallback, TrainerCallback
from ._das import DASTrainer
from ._errors import TrainerError
from ._history import TrainingHistory
from ._iit import IITTrainer
from ._loop import TrainingRun
from ._metrics import default_compute_loss, default_compute_metrics, extract_logits
from ._options import IITOptions, TrainerOptions
from ._schedules import lr_factor, temperature_schedule

__all__ = [
    "TRAINERS",
    "Trainer",
    "TrainerError",
    "TrainerOptions",
    "IITOptions",
    "TrainingHistory",
    "TrainerCallback",
    "LoggingCallback",
    "TrainingRun",
    "DASTrainer",
    "IITTrainer",
    "default_compute_loss",
    "default_compute_metrics",
    "extract_logits",
    "lr_factor",
    "temperature_schedule",
]

TRAINERS: tuple[type[Trainer], ...] = (DASTrainer, IITTrainer)
