"""The optional tokenizer of the reference-model factories (pyvene's ``tokenizer_name``).

transformers is imported only when a tokenizer is asked for, so vene-core never needs it.
"""

from __future__ import annotations

from typing import Any

from .._errors import MissingPluginError

__all__ = ["load_tokenizer"]


def load_tokenizer(tokenizer_name: str | None, cache_dir: str | None = None) -> Any:
    """None without a name; else ``AutoTokenizer.from_pretrained(tokenizer_name)``."""
    if tokenizer_name is None:
        return None
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingPluginError(
            f"tokenizer_name={tokenizer_name!r} needs transformers to load the tokenizer; install "
            "vene-hf (pip install vene-hf), or pass tokenizer_name=None."
        ) from None
    return AutoTokenizer.from_pretrained(tokenizer_name, cache_dir=cache_dir)
