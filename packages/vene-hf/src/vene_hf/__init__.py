"""vene-hf: Hugging Face architectures, generation with interventions and the Hub for vene."""

from ._version import __version__

__all__ = ["__version__"]
