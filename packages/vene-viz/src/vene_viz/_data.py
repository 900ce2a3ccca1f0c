"""Reading what users pass (tensors, arrays, nested lists, labels) into checked numpy arrays."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._errors import DataShapeError, DataTypeError, DataValueError, LabelMismatchError

__all__ = ["as_array", "as_matrix", "check_labels", "display_label", "as_number"]


def as_array(data: Any, what: str) -> np.ndarray:
    """``data`` (a torch tensor, numpy array or nested list of numbers) as a float64 array.

    Tensors are detached and moved to the CPU first, so a tensor that requires grad, lives on an
    accelerator or holds bfloat16 can be passed as is.
    """
    if hasattr(data, "detach") and hasattr(data, "cpu"):  # a torch tensor, without importing torch
        data = data.detach().cpu()
        if data.is_complex():
            raise DataTypeError(f"{what} is a complex tensor; pass its .abs() or .real instead.")
        data = data.double().numpy()  # exact for every real dtype (bfloat16, half, float, int)
    if isinstance(data, (str, bytes)) or data is None:
        raise DataTypeError(
            f"{what} must be a tensor, a numpy array or a nested list of numbers, got "
            f"{type(data).__name__}."
        )
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataTypeError(
            f"{what} must be a tensor, a numpy array or a nested list of numbers of equal lengths; "
            f"it could not be read as numbers ({exc})."
        ) from None
    if np.isinf(arr).any():
        raise DataValueError(
            f"{what} contains infinite values, which no colour scale can show; replace them "
            "(e.g. torch.nan_to_num(x, posinf=..., neginf=...)) or mask them as NaN."
        )
    return arr


def as_matrix(data: Any, what: str, rows: str, cols: str) -> np.ndarray:
    """A 2-D ``[rows, cols]`` array, or a :class:`DataShapeError` that says how to get one."""
    arr = as_array(data, what)
    if arr.ndim != 2:
        if arr.ndim > 2:
            hint = (
                f"reduce the extra dimensions first (for instance average over examples with "
                f"x.mean(0)) so that it is [{rows}, {cols}]"
            )
        else:
            hint = f"reshape it to [{rows}, {cols}] (x.reshape(1, -1) for a single row)"
        raise DataShapeError(
            f"{what} must be 2-D [{rows}, {cols}], got {arr.ndim}-D with shape {tuple(arr.shape)}; "
            f"{hint}."
        )
    if arr.size == 0:
        raise DataShapeError(f"{what} is empty (shape {tuple(arr.shape)}); there is nothing to plot.")
    return arr


def display_label(label: Any) -> str:
    """A label as text that matplotlib shows literally.

    A ``$`` would start mathtext, and newlines or tabs (common in tokens) would break the tick
    layout, so they are escaped.
    """
    text = str(label)
    return text.replace("\\", "\\\\").replace("$", r"\$").replace("\n", "\\n").replace("\t", "\\t")


def check_labels(labels: Any, n: int, what: str, axis: str) -> list[str] | None:
    """``labels`` as ``n`` strings (or None), or a :class:`LabelMismatchError`."""
    if labels is None:
        return None
    if isinstance(labels, (str, bytes)):
        raise LabelMismatchError(
            f"{what} must be a sequence with one label per {axis}, got the single string "
            f"{labels!r}; split it into tokens first (e.g. tokenizer.convert_ids_to_tokens(ids))."
        )
    if hasattr(labels, "tolist"):  # a tensor or array of ids
        labels = labels.tolist()
    if not isinstance(labels, Sequence):
        labels = list(labels)
    if len(labels) != n:
        raise LabelMismatchError(
            f"got {len(labels)} {what} for {n} {axis}s; give exactly one label per {axis} "
            f"(the data's {axis} axis has length {n})."
        )
    return [display_label(x) for x in labels]


def as_number(value: Any, what: str) -> float:
    """A Python float from an int, float, numpy scalar or one-element tensor."""
    if hasattr(value, "detach") and hasattr(value, "numel"):
        if value.numel() != 1:
            raise DataTypeError(f"{what} is a tensor with {value.numel()} elements; give one number.")
        return float(value.detach().cpu().float())
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.number)):
        raise DataTypeError(f"{what} must be a number, got {type(value).__name__} {value!r}.")
    number = float(value)
    if np.isinf(number):
        raise DataValueError(f"{what} is infinite; log finite values (or NaN for a missing one).")
    return number
