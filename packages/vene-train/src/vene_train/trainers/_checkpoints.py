"""A training checkpoint's state besides the weights: optimizer, schedule, history, random state.

:func:`save_state` writes ``trainer_state.json`` (the epoch, the history, the schedule, the
optimizer's hyper-parameters and scalars, Python's random state) and ``optimizer.safetensors``
(the optimizer's tensors and the torch / numpy / CUDA random states) beside the artifact that
``IntervenableModel.save`` writes; :func:`load_state` reads them back. No pickle.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from typing import Any

import attrs
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ._errors import TrainerError
from ._history import TrainingHistory

__all__ = ["STATE_NAME", "OPTIMIZER_NAME", "ResumeState", "save_state", "load_state", "restore_rng"]

STATE_NAME = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.safetensors"


@attrs.frozen
class ResumeState:
    """What a checkpoint says about the run that wrote it."""

    epoch: int  # the last epoch completed
    history: TrainingHistory
    optimizer: dict[str, Any]  # an optimizer state_dict
    scheduler: dict[str, Any]  # a scheduler state_dict
    rng: dict[str, Any]


def _rng_state() -> tuple[dict[str, Any], dict[str, Tensor]]:
    version, state, gauss = random.getstate()
    plain: dict[str, Any] = {"python": [version, list(state), gauss]}
    tensors: dict[str, Tensor] = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    try:
        import numpy as np
    except ImportError:  # numpy is optional; without it there is no numpy state to keep
        return plain, tensors
    legacy = np.random.get_state(legacy=True)
    assert isinstance(legacy, tuple)  # legacy=True gives (name, keys, pos, has_gauss, cached)
    name, keys, pos, has_gauss, cached = legacy
    plain["numpy"] = [name, int(pos), int(has_gauss), float(cached)]
    tensors["rng.numpy"] = torch.from_numpy(keys.astype("int64"))
    return plain, tensors


def restore_rng(rng: Mapping[str, Any]) -> None:
    """Put back the random state a checkpoint recorded."""
    version, state, gauss = rng["python"]
    random.setstate((version, tuple(state), gauss))
    torch.set_rng_state(rng["torch"])
    cuda = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    if "numpy" in rng:
        import numpy as np

        name, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((name, rng["numpy_keys"].numpy().astype("uint32"), pos, has_gauss, cached))


def save_state(
    path: str,
    *,
    epoch: int,
    history: TrainingHistory,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Write the run's state into the checkpoint directory ``path``."""
    opt = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, state in opt["state"].items():
        for name, value in state.items():
            if isinstance(value, Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{name}"] = value
    rng, rng_tensors = _rng_state()
    tensors.update(rng_tensors)
    data = {
        "epoch": epoch,
        "history": attrs.asdict(history),
        "scheduler": scheduler.state_dict(),
        "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars, "n_states": len(opt["state"])},
        "rng": rng,
    }
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, STATE_NAME), "w") as f:
        json.dump(data, f, indent=1)
    save_file(tensors, os.path.join(path, OPTIMIZER_NAME))


def load_state(path: str) -> ResumeState:
    """Read what :func:`save_state` wrote, or an error that says what is missing."""
    state_path, tensor_path = os.path.join(path, STATE_NAME), os.path.join(path, OPTIMIZER_NAME)
    for p in (state_path, tensor_path):
        if not os.path.exists(p):
            raise TrainerError(
                f"{path!r} is not a training checkpoint: it has no {os.path.basename(p)}. Resume from a "
                "directory the trainer wrote under checkpoint_dir (epoch-<k> or final)."
            )
    with open(state_path) as f:
        data = json.load(f)
    tensors = load_file(tensor_path)
    per_param: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, pid, name = key.split(".", 2)
            per_param.setdefault(int(pid), {})[name] = value
    for key, value in data["optimizer"]["scalars"].items():
        pid, name = key.split(".", 1)
        per_param.setdefault(int(pid), {})[name] = value
    rng = dict(data["rng"])
    rng["torch"] = tensors["rng.torch"]
    rng.update({k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.cuda.")})
    if "rng.numpy" in tensors:
        rng["numpy_keys"] = tensors["rng.numpy"]
    return ResumeState(
        epoch=int(data["epoch"]),
        history=TrainingHistory(**data["history"]),
        optimizer={"state": per_param, "param_groups": data["optimizer"]["param_groups"]},
        scheduler=data["scheduler"],
        rng=rng,
    )
