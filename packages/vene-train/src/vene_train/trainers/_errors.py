"""The trainers' error class."""

from __future__ import annotations

from vene import ConfigError

__all__ = ["TrainerError"]


class TrainerError(ConfigError):
    """A trainer option or batch that cannot be used (says which, and how to fix it)."""
