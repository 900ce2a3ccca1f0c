"""vene-train: trainable interventions, DAS and IIT trainers, causal models for vene."""

from ._version import __version__

__all__ = ["__version__"]
