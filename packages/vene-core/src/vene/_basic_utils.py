"""pyvene's small helpers (``pyvene.models.basic_utils``): seeds, counting, masks, token display.

Each keeps pyvene's name and parameters so ``import vene as pv`` code that calls them runs;
the implementations are vene's own. ``top_vals`` and ``format_token`` are display helpers for
notebooks: printing is their job.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ._errors import ConfigError

__all__ = [
    "set_seed",
    "count_parameters",
    "sigmoid_boundary",
    "harmonic_sigmoid_boundary",
    "random_permutation_matrix",
    "closeness_to_permutation_loss",
    "embed_to_distrib",
    "format_token",
    "top_vals",
    "get_list_depth",
    "get_batch_size",
    "create_directory",
    "GET_LOC",
]


def set_seed(seed: int) -> None:
    """Seed Python's, numpy's (when installed) and torch's generators (all devices)."""
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional for this helper
        pass
    else:
        np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def count_parameters(model: nn.Module) -> int:
    """The number of elements of ``model``'s parameters that require gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def sigmoid_boundary(_input: Tensor, boundary_x: Tensor, boundary_y: Tensor, temperature: Any) -> Tensor:
    """A soft mask that is ~1 between ``boundary_x`` and ``boundary_y`` and ~0 outside.

    The product of two sigmoids with slope ``1/temperature`` (Boundless DAS, Wu et al. 2023).
    """
    rise = torch.sigmoid((_input - boundary_x) / temperature)
    fall = torch.sigmoid((boundary_y - _input) / temperature)
    return rise * fall


def harmonic_sigmoid_boundary(
    _input: Tensor, boundary_x: Tensor, boundary_y: Tensor, temperature: Any
) -> Tensor:
    """Like :func:`sigmoid_boundary`, but inside the interval the slope follows the harmonic mean
    of the distances to both boundaries, so the mask stays flat far from them."""
    below = _input <= boundary_x
    above = _input >= boundary_y
    inside = ~below & ~above
    dist = 1.0 / (0.5 * (1.0 / (_input - boundary_x).abs() + 1.0 / (_input - boundary_y).abs()))
    return (
        below * torch.sigmoid((_input - boundary_x) / temperature)
        + above * torch.sigmoid((boundary_y - _input) / temperature)
        + inside * torch.sigmoid(dist / temperature)
    )


def random_permutation_matrix(n: int) -> Tensor:
    """An ``n x n`` permutation matrix drawn with torch's generator."""
    return torch.eye(n)[torch.randperm(n)]


def closeness_to_permutation_loss(rotation: Tensor) -> Tensor:
    """How far ``rotation`` is from a permutation: row and column sums away from 1, plus how far
    the entries are from {0, 1}."""
    rows = (rotation.sum(dim=1) - 1.0).abs().mean()
    cols = (rotation.sum(dim=0) - 1.0).abs().mean()
    binary = (rotation * (1 - rotation)).mean()
    return 0.5 * (rows + cols) + binary


def embed_to_distrib(model: nn.Module, embed: Tensor, log: bool = False, logits: bool = False) -> Tensor:
    """Read a hidden state as a distribution over the vocabulary (the logit lens).

    ``embed`` is multiplied by the model's input embedding matrix (``get_input_embeddings()``,
    or a ``wte`` module as in GPT-2); the last dimension is normalised with a (log-)softmax
    unless ``logits``. pyvene supports GPT-2 only; this works for any model exposing its
    embeddings.
    """
    emb = None
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        emb = getter()
    if emb is None:
        emb = getattr(model, "wte", None) or getattr(getattr(model, "transformer", None), "wte", None)
    if not isinstance(emb, nn.Embedding):
        raise ConfigError(
            f"embed_to_distrib needs the model's input embeddings; {type(model).__name__} has no "
            "get_input_embeddings() or wte. Pass the base model that owns the embedding matrix."
        )
    with torch.inference_mode():
        vocab = embed @ emb.weight.t()
        if logits:
            return vocab
        return vocab.log_softmax(-1) if log else vocab.softmax(-1)


def format_token(tokenizer: Any, tok: Any) -> str:
    """A token decoded for display: spaces as ``_``, newlines as ``\\n``."""
    return str(tokenizer.decode(tok)).replace(" ", "_").replace("\n", "\\n")


def top_vals(tokenizer: Any, res: Tensor, n: int = 10, return_results: bool = False) -> Any:
    """The ``n`` largest entries of a distribution over the vocabulary, as ``(token, value)``.

    Returns them with ``return_results=True``; otherwise prints one per line (a notebook helper).
    """
    values, indices = torch.topk(res, n)
    pairs = [(format_token(tokenizer, int(i)), float(v)) for v, i in zip(values, indices, strict=True)]
    if return_results:
        return pairs
    for tok, value in pairs:
        print(f"{tok:<20} {value}")  # noqa: T201 -- printing is this display helper's job
    return None


def get_list_depth(lst: Any) -> int:
    """How deeply lists nest in ``lst`` (0 for a non-list; ``[]`` has depth 1)."""
    if isinstance(lst, list):
        return 1 + max((get_list_depth(x) for x in lst), default=0)
    return 0


def get_batch_size(model_input: Any) -> int:
    """The batch size of a tensor, or of the first tensor in a dict of model inputs."""
    if isinstance(model_input, Tensor):
        return int(model_input.shape[0])
    if isinstance(model_input, Mapping):
        for value in model_input.values():
            if isinstance(value, Tensor):
                return int(value.shape[0])
    raise ConfigError(
        f"get_batch_size needs a tensor or a dict holding tensors, got {type(model_input).__name__}."
    )


def create_directory(path: str) -> None:
    """Create ``path`` (and its parents) if it does not exist."""
    os.makedirs(path, exist_ok=True)


def GET_LOC(LOC: Any, unit: str = "h.pos", batch_size: int = 1) -> list[Any]:  # noqa: N802 -- pyvene's name
    """``unit_locations`` for one (head, position) pair, for every example of a batch.

    ``GET_LOC((head, pos), batch_size=b)`` is ``[[[[head]] * b, [[pos]] * b]]``: the ``h.pos``
    form of one intervention. Only ``unit="h.pos"`` has a short form.
    """
    if unit != "h.pos":
        raise ConfigError(f"GET_LOC builds 'h.pos' locations only, got unit={unit!r}; write other units out.")
    head, pos = LOC
    return [[[[head]] * batch_size, [[pos]] * batch_size]]
