"""The enums a site is described with: which side of a call, which unit, which tensor layout.

A leaf module (it imports only the errors), so that every layer can name these types without
importing the others.
"""

from __future__ import annotations

import enum

from ._errors import ConfigError

__all__ = ["Side", "Unit", "Layout"]


class Side(enum.Enum):
    """Which side of a module call a site reads: its inputs or its output."""

    INPUT = "input"
    OUTPUT = "output"


class Unit(enum.Enum):
    """The unit that ``unit_locations`` index: positions, heads, both, or recurrent timesteps."""

    POS = "pos"
    H = "h"
    H_POS = "h.pos"
    T = "t"

    @classmethod
    def parse(cls, value: str | Unit) -> Unit:
        if isinstance(value, Unit):
            return value
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(repr(u.value) for u in cls)
            raise ConfigError(f"unknown unit {value!r}; use one of {valid}.") from None

    @property
    def has_heads(self) -> bool:
        return self in (Unit.H, Unit.H_POS)


class Layout(enum.Enum):
    """How the site's tensor is laid out.

    ``BSD``: ``[batch, seq, features]`` (heads, if any, are split out of the features).
    ``BD``: ``[batch, features]``, one position per call (MLP hidden states, recurrent cells).
    ``BHSD``: ``[batch, heads, seq, features]`` (attention probabilities: features are key positions).
    """

    BSD = "bsd"
    BD = "bd"
    BHSD = "bhsd"
