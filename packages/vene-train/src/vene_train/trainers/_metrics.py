"""The default loss and metrics of the trainers, and reading logits from a model's outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from ._errors import TrainerError

__all__ = ["default_compute_loss", "default_compute_metrics", "extract_logits"]


def _class_labels(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``[N, C]`` logits and ``[N]`` integer labels from the usual shapes."""
    if labels.dim() == logits.dim() and labels.shape[-1] == 1 and logits.shape[-1] != 1:
        labels = labels.squeeze(-1)  # pyvene's output_to_tensor gives [batch, 1] floats
    if labels.shape != logits.shape[:-1]:
        raise TrainerError(
            f"labels of shape {tuple(labels.shape)} do not match logits of shape "
            f"{tuple(logits.shape)}: the default loss and metrics expect class indices shaped like "
            "the logits without their last axis. Pass compute_loss / compute_metrics of your own."
        )
    return logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long()


def default_compute_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of class logits ``[..., C]`` against class indices (``-100`` ignored)."""
    flat_logits, flat_labels = _class_labels(logits, labels)
    return nn.functional.cross_entropy(flat_logits.float(), flat_labels, ignore_index=-100)


def default_compute_metrics(eval_preds: Sequence[Tensor], eval_labels: Sequence[Tensor]) -> dict[str, float]:
    """``{"accuracy": ...}``: argmax of the logits against class indices (``-100`` ignored)."""
    correct = 0
    total = 0
    for logits, labels in zip(eval_preds, eval_labels):
        flat_logits, flat_labels = _class_labels(logits, labels)
        keep = flat_labels != -100
        correct += int((flat_logits.argmax(-1)[keep] == flat_labels[keep]).sum())
        total += int(keep.sum())
    return {"accuracy": correct / max(total, 1)}


def extract_logits(outputs: Any) -> Tensor:
    """The logits of a model's outputs: ``.logits``, ``["logits"]``, a tensor, or the first item."""
    if isinstance(outputs, Tensor):
        return outputs
    logits = getattr(outputs, "logits", None)
    if logits is None and isinstance(outputs, Mapping):
        logits = outputs.get("logits")
    if logits is None and isinstance(outputs, (tuple, list)) and outputs:
        logits = outputs[0]
    if not isinstance(logits, Tensor):
        raise TrainerError(
            f"cannot find logits in the model's output ({type(outputs).__name__}); pass "
            "logits_fn=lambda outputs: ... to the trainer."
        )
    return logits
