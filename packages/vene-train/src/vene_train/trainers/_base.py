"""The training loop shared by the DAS and IIT trainers.

A trainer wraps an :class:`vene.IntervenableModel` and is built as ``cls(intervenable_model,
**options)``; every option may also be passed to :meth:`Trainer.train_alignment`, where it
overrides the constructor's value for that call. The loop: seed, build the optimizer and the
learning-rate schedule (warm-up then decay), and for each batch run the interchange intervention,
compute the loss, accumulate gradients, step; evaluate after each epoch, write checkpoints, and
return a :class:`TrainingHistory`. Under ``torchrun`` / ``accelerate launch`` (or any initialised
``torch.distributed`` process group of more than one process) the loss module is wrapped in
``DistributedDataParallel``, each process reads its own shard of the data, and only rank 0 shows
progress and writes checkpoints.

A batch (after ``inputs_collator``) is a mapping. The keys the loop reads:

``base``
    the model inputs of the base (a dict, or a tensor). Instead, pyvene's ``input_ids`` (passed
    to the model as ``input_key``: ``inputs_embeds`` when the tensor is floating point,
    ``input_ids`` otherwise), with ``attention_mask`` if present.
``sources``
    a list of model inputs, one per intervention group (``None`` skips a group). Instead,
    pyvene's ``source_input_ids`` of shape ``[batch, n_sources, ...]`` (source ``k`` feeds group
    ``k``), with ``source_attention_mask`` if present.
``labels``
    the counterfactual labels; ``base_labels`` the factual ones (IIT's task loss).
``unit_locations``, ``subspaces``, ``source_representations``, ``intervention_additional_kwargs``
    passed to the intervenable model's forward when present (else the options of the same names;
    an option may be a function ``f(batch)``).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
from attrs import define, field
from torch import Tensor, nn
from tqdm.auto import tqdm

from vene import ConfigError, IntervenableModel
from vene.sites import nearest

__all__ = [
    "Trainer",
    "TrainerError",
    "TrainingHistory",
    "default_compute_loss",
    "default_compute_metrics",
    "temperature_schedule",
    "lr_factor",
    "extract_logits",
    "n_groups",
    "call_model",
]


class TrainerError(ConfigError):
    """A trainer option or batch that cannot be used (says which, and how to fix it)."""


@define
class TrainingHistory:
    """What a training run did, step by step and epoch by epoch.

    ``losses``, ``learning_rates`` and ``temperatures`` have one entry per optimizer step (the
    loss averaged over the accumulated micro-batches, and the learning rate and temperature the
    step ran with; no temperatures when no intervention has one); ``train_metrics`` and ``eval_metrics`` one dict per epoch
    (``eval_metrics`` only with an ``eval_dataloader``; its ``accuracy`` is the IIA);
    ``checkpoints`` the directories written.
    """

    losses: list[float] = field(factory=list)
    learning_rates: list[float] = field(factory=list)
    temperatures: list[float] = field(factory=list)
    train_metrics: list[dict[str, float]] = field(factory=list)
    eval_metrics: list[dict[str, float]] = field(factory=list)
    checkpoints: list[str] = field(factory=list)
    global_step: int = 0

    @property
    def final_eval(self) -> dict[str, float] | None:
        """The metrics of the last evaluation, or None."""
        return self.eval_metrics[-1] if self.eval_metrics else None


# ---------------------------------------------------------------------------------------------
# defaults for the callbacks pyvene asks users to write
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------------
def temperature_schedule(start: float, end: float, steps: int, kind: str = "linear") -> list[float]:
    """``steps`` temperatures from ``start`` to ``end``: evenly spaced (``linear``) or with a
    constant ratio (``geometric``)."""
    if steps <= 0:
        return []
    if steps == 1:
        return [float(end)]
    if kind == "linear":
        return [start + (end - start) * i / (steps - 1) for i in range(steps)]
    if kind == "geometric":
        if start <= 0 or end <= 0:
            raise TrainerError("a geometric temperature schedule needs positive start and end.")
        ratio = (end / start) ** (1.0 / (steps - 1))
        return [start * ratio**i for i in range(steps)]
    raise TrainerError(f"temperature_schedule must be 'linear' or 'geometric', got {kind!r}.")


def lr_factor(step: int, warmup: int, total: int, kind: str) -> float:
    """The learning-rate multiplier of optimizer step ``step`` (0-based).

    Warm-up: ``(step + 1) / warmup`` for the first ``warmup`` steps (the first step already
    learns); then ``constant`` (1), ``linear`` decay to 0 at ``total``, or ``cosine`` decay.
    """
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    span = max(total - warmup, 1)
    progress = min((step - warmup) / span, 1.0)
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise TrainerError(f"lr_scheduler must be 'linear', 'cosine' or 'constant', got {kind!r}.")


# ---------------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------------
def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def _plain(value: Any) -> Any:
    """Locations and subspaces collated into tensors go back to the lists the engine reads."""
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)) and any(isinstance(v, Tensor) for v in value):
        return [_plain(v) for v in value]
    return value


def _batch_len(batch: Mapping[str, Any]) -> int:
    for key in ("labels", "input_ids", "inputs_embeds"):
        v = batch.get(key)
        if isinstance(v, Tensor) and v.dim() > 0:
            return v.shape[0]
    base = batch.get("base")
    if isinstance(base, Tensor):
        return base.shape[0]
    if isinstance(base, Mapping):
        for v in base.values():
            if isinstance(v, Tensor) and v.dim() > 0:
                return v.shape[0]
    raise TrainerError(
        "cannot tell the batch size: the batch has no 'labels', 'input_ids' or 'base' tensor."
    )


def n_groups(intervenable: IntervenableModel) -> int:
    """How many sources a call takes: representations sharing a ``group_key`` share one."""
    keys = {
        ("group", rep.group_key) if rep.group_key is not None else ("own", i)
        for i, rep in enumerate(intervenable.config.representations)
    }
    return len(keys)


def call_model(model: nn.Module, inputs: Any) -> Any:
    """``model(**inputs)`` for a dict of inputs, ``model(inputs)`` for a tensor."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, Tensor):
        return model(inputs)
    raise TrainerError(
        f"model inputs must be a dict of tensors (or a tensor), got {type(inputs).__name__}."
    )


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


# ---------------------------------------------------------------------------------------------
# distributed helpers
# ---------------------------------------------------------------------------------------------
def _dist() -> Any:
    import torch.distributed as dist

    return dist


def _world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1)."""
    dist = _dist()
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _maybe_init_process_group(device: torch.device) -> None:
    """Under torchrun / accelerate launch (WORLD_SIZE > 1), start the process group if needed."""
    dist = _dist()
    if not dist.is_available() or dist.is_initialized():
        return
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL's collectives run on the current device
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def _shard(loader: Any, rank: int, world: int, seed: int) -> Any:
    """This process's part of ``loader``: a DataLoader gets a DistributedSampler (same batch
    size per process, so the global batch is ``world`` times larger); another iterable of batches
    gives every ``world``-th batch."""
    from torch.utils.data import DataLoader, RandomSampler
    from torch.utils.data.distributed import DistributedSampler

    if isinstance(loader, DataLoader):
        if isinstance(loader.sampler, DistributedSampler):
            return loader
        if loader.batch_size is None:
            raise TrainerError(
                "the train_dataloader uses a custom batch_sampler, which cannot be split across "
                "processes automatically; give it a DistributedSampler yourself, or pass "
                "shard_data=False if every process already reads its own data."
            )
        sampler = DistributedSampler(
            loader.dataset,
            num_replicas=world,
            rank=rank,
            shuffle=isinstance(loader.sampler, RandomSampler),
            seed=seed,
            drop_last=loader.drop_last,
        )
        return DataLoader(
            loader.dataset,
            batch_size=loader.batch_size,
            sampler=sampler,
            collate_fn=loader.collate_fn,
            num_workers=loader.num_workers,
            pin_memory=loader.pin_memory,
            drop_last=loader.drop_last,
        )
    return _EveryNth(loader, rank, world)


class _EveryNth:
    def __init__(self, batches: Iterable[Any], rank: int, world: int) -> None:
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self) -> Iterator[Any]:
        for i, b in enumerate(self.batches):
            if i % self.world == self.rank:
                yield b

    def __len__(self) -> int:
        n = len(self.batches)  # type: ignore[arg-type]
        return n // self.world + (1 if self.rank < n % self.world else 0)


# ---------------------------------------------------------------------------------------------
# the loss module (what DistributedDataParallel wraps)
# ---------------------------------------------------------------------------------------------
class _LossModule(nn.Module):
    """``forward(batch) -> (loss, logits, labels)``, one module so that DDP sees the whole step."""

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.intervenable = trainer.model
        self._trainer = [trainer]  # a list: not a submodule, so DDP does not see it twice

    def forward(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        return self._trainer[0].compute_step_loss(batch)


# ---------------------------------------------------------------------------------------------
# the trainer
# ---------------------------------------------------------------------------------------------
_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "epochs": 10,
    "gradient_accumulation_steps": 1,
    "warmup_steps": None,
    "warmup_ratio": None,
    "lr_scheduler": "linear",
    "optimizer": "adam",
    "weight_decay": 0.0,
    "max_grad_norm": None,
    "temperature_start": 50.0,
    "temperature_end": 0.1,
    "temperature_schedule": "linear",
    "boundary_loss_weight": 0.0,
    "seed": None,
    "eval_dataloader": None,
    "eval_inputs_collator": None,
    "checkpoint_dir": None,
    "save_every_epoch": True,
    "progress": True,
    "log_every": 1,
    "input_key": None,
    "unit_locations": None,
    "subspaces": None,
    "logits_fn": None,
    "forward_fn": None,
    "distributed": None,
    "shard_data": True,
    "find_unused_parameters": False,
}
_ALIASES = {"warm_up_steps": "warmup_steps", "num_epochs": "epochs", "learning_rate": "lr"}


class Trainer:
    """Base class of the trainers: the loop, the schedule, evaluation, checkpoints, DDP.

    Subclasses set ``type_name`` and may override :meth:`parameters`, :meth:`compute_step_loss`,
    :meth:`evaluate` and :attr:`saves_model`.
    """

    type_name: ClassVar[str]
    #: Extra options a subclass accepts, with their defaults.
    extra_options: ClassVar[dict[str, Any]] = {}
    #: Whether checkpoints include the wrapped model's weights (IIT changes them).
    saves_model: ClassVar[bool] = False

    def __init__(self, intervenable_model: IntervenableModel, **options: Any) -> None:
        if not isinstance(intervenable_model, IntervenableModel):
            raise TrainerError(
                f"{type(self).__name__} trains a vene.IntervenableModel, got "
                f"{type(intervenable_model).__name__}; wrap the model first: "
                "pv.IntervenableModel(config, model)."
            )
        self.model = intervenable_model
        self.options = self._merge({**_DEFAULTS, **self.extra_options}, options)
        self._compute_loss: Callable[[Tensor, Tensor], Tensor] = default_compute_loss
        self._compute_metrics: Callable[..., dict[str, float]] = default_compute_metrics
        self._opts: dict[str, Any] = dict(self.options)

    # -- options ------------------------------------------------------------------------------
    def _merge(self, base: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in new.items():
            name = _ALIASES.get(key, key)
            if name not in out:
                valid = sorted(set(out) | set(_ALIASES))
                hint = nearest(key, valid, 3, cutoff=0.6)
                raise TrainerError(
                    f"unknown {type(self).__name__} option {key!r}.{hint} Options: "
                    f"{', '.join(valid)}."
                )
            if key == "warm_up_steps" and isinstance(value, float) and 0 <= value < 1:
                name, value = "warmup_ratio", value  # pyvene's default, 0.1, is a ratio
            out[name] = value
        return out

    def _check_options(self, o: Mapping[str, Any]) -> None:
        for name in ("epochs", "gradient_accumulation_steps", "log_every"):
            v = o[name]
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "epochs" else 1):
                raise TrainerError(f"{name} must be a positive int, got {v!r}.")
        if o["warmup_steps"] is not None and o["warmup_ratio"] is not None:
            raise TrainerError("pass warmup_steps or warmup_ratio, not both.")
        ws = o["warmup_steps"]
        if ws is not None and (isinstance(ws, bool) or not isinstance(ws, int) or ws < 0):
            raise TrainerError(f"warmup_steps must be an int >= 0, got {ws!r}.")
        wr = o["warmup_ratio"]
        if wr is not None and not 0 <= wr <= 1:
            raise TrainerError(f"warmup_ratio must be within [0, 1], got {wr!r}.")
        if not o["lr"] > 0:
            raise TrainerError(f"lr must be positive, got {o['lr']!r}.")
        lr_factor(0, 0, 1, o["lr_scheduler"])  # validates the name
        temperature_schedule(1.0, 1.0, 2, o["temperature_schedule"])

    # -- what is trained ----------------------------------------------------------------------
    def parameters(self) -> list[nn.Parameter]:
        """The parameters the optimizer updates: the interventions' trainable parameters."""
        return list(self.model.get_trainable_parameters())

    def _interventions(self) -> list[nn.Module]:
        seen: list[nn.Module] = []
        for iv in self.model.interventions.values():
            if not any(iv is s for s in seen):
                seen.append(iv)
        return seen

    def _make_optimizer(self, params: list[nn.Parameter], o: Mapping[str, Any]) -> torch.optim.Optimizer:
        opt = o["optimizer"]
        if callable(opt) and not isinstance(opt, str):
            return opt(params, lr=o["lr"])
        kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
        if opt not in kinds:
            raise TrainerError(
                f"optimizer must be one of {sorted(kinds)} or a function (params, lr) -> optimizer, "
                f"got {opt!r}."
            )
        return kinds[opt](params, lr=o["lr"], weight_decay=o["weight_decay"])

    # -- one step -----------------------------------------------------------------------------
    def _model_inputs(self, value: Any, mask: Any) -> Any:
        if isinstance(value, Mapping) or value is None:
            return value
        key = self._opts["input_key"]
        if key is None:
            key = "inputs_embeds" if torch.is_floating_point(value) else "input_ids"
        out = {key: value}
        if mask is not None:
            out["attention_mask"] = mask
        return out

    def _option(self, batch: Mapping[str, Any], name: str) -> Any:
        if name in batch:
            return _plain(batch[name])
        value = self._opts.get(name)
        if callable(value):
            return _plain(value(batch))
        return value

    def intervention_inputs(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments of the intervenable model's forward for one batch."""
        if "base" in batch:
            base = batch["base"]
        elif "input_ids" in batch or "inputs_embeds" in batch:
            if "inputs_embeds" in batch:
                base = {"inputs_embeds": batch["inputs_embeds"]}
                if batch.get("attention_mask") is not None:
                    base["attention_mask"] = batch["attention_mask"]
            else:
                base = self._model_inputs(batch["input_ids"], batch.get("attention_mask"))
        else:
            raise TrainerError(
                "the batch has no base inputs: give 'base' (a dict of model inputs) or 'input_ids' "
                f"(keys are {sorted(batch)}); an inputs_collator can build them."
            )
        groups = n_groups(self.model)
        if "sources" in batch:
            sources = batch["sources"]
            if isinstance(sources, (Mapping, Tensor)):
                sources = [sources]
            sources = [self._model_inputs(s, None) for s in sources]
        elif "source_input_ids" in batch:
            src = batch["source_input_ids"]
            if src.dim() < 2:
                raise TrainerError(
                    "source_input_ids must be [batch, n_sources, ...]; got shape "
                    f"{tuple(src.shape)}."
                )
            if src.shape[1] < groups:
                raise TrainerError(
                    f"source_input_ids holds {src.shape[1]} sources per example but the model has "
                    f"{groups} intervention groups; give one source per group."
                )
            smask = batch.get("source_attention_mask")
            sources = [
                self._model_inputs(src[:, k], None if smask is None else smask[:, k])
                for k in range(groups)
            ]
        else:
            sources = None
        kwargs: dict[str, Any] = {"base": base, "sources": sources}
        for name in ("unit_locations", "subspaces"):
            kwargs[name] = self._option(batch, name)
        for name in ("source_representations", "intervention_additional_kwargs"):
            if name in batch:
                kwargs[name] = batch[name]
        return kwargs

    def intervened_logits(self, batch: Mapping[str, Any]) -> Tensor:
        """The logits of the base run with the batch's interchange interventions."""
        forward_fn = self._opts["forward_fn"]
        if forward_fn is not None:
            outputs = forward_fn(self.model, batch)
        else:
            _, outputs = self.model(**self.intervention_inputs(batch))
        logits_fn = self._opts["logits_fn"] or extract_logits
        return logits_fn(outputs)

    def _labels(self, batch: Mapping[str, Any], key: str = "labels") -> Tensor:
        if key not in batch:
            raise TrainerError(
                f"the batch has no {key!r} (keys are {sorted(batch)}); an inputs_collator can add it."
            )
        return batch[key]

    def _regularisation(self) -> Tensor | float:
        w = self._opts["boundary_loss_weight"]
        if not w:
            return 0.0
        total: Tensor | float = 0.0
        for iv in self._interventions():
            b = getattr(iv, "intervention_boundaries", None)
            if isinstance(b, Tensor):
                total = total + b.sum()
        return w * total

    def compute_step_loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """``(loss, logits, labels)`` of one batch: the counterfactual loss (plus regularisers)."""
        logits = self.intervened_logits(batch)
        labels = self._labels(batch)
        loss = self._compute_loss(logits, labels) + self._regularisation()
        return loss, logits, labels

    # -- the loop -----------------------------------------------------------------------------
    def _seed(self, seed: int | None) -> None:
        if seed is None:
            return
        random.seed(seed)
        torch.manual_seed(seed)  # every device
        try:
            import numpy as np
        except ImportError:  # numpy is optional; torch and random are seeded regardless
            return
        np.random.seed(seed % 2**32)

    def train_alignment(
        self,
        train_dataloader: Iterable[Any],
        compute_loss: Callable[[Tensor, Tensor], Tensor] | None = None,
        compute_metrics: Callable[..., dict[str, float]] | None = None,
        inputs_collator: Callable[[Any], Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> TrainingHistory:
        """Train on ``train_dataloader`` (pyvene's signature); returns the history.

        ``compute_loss(logits, labels) -> loss`` and ``compute_metrics([logits], [labels]) ->
        {"accuracy": ...}`` default to cross-entropy and accuracy over class indices;
        ``inputs_collator(batch)`` turns each batch into the mapping described in this module's
        docs. ``options`` override the trainer's for this call (``lr``, ``epochs``,
        ``gradient_accumulation_steps``, ``warmup_steps``, ``seed``, ``eval_dataloader``...).
        """
        o = self._merge(self.options, options)
        self._check_options(o)
        self._opts = o
        self._compute_loss = compute_loss or default_compute_loss
        self._compute_metrics = compute_metrics or default_compute_metrics
        self._seed(o["seed"])
        device = self.model.get_device()
        distributed = o["distributed"]
        if distributed is not False:
            _maybe_init_process_group(device)
        rank, world = _world()
        if distributed and world == 1:
            raise TrainerError(
                "distributed=True but no torch.distributed process group of more than one process "
                "is running; launch with torchrun --nproc_per_node N (or accelerate launch)."
            )
        use_ddp = world > 1 and distributed is not False
        loader = train_dataloader
        if use_ddp and o["shard_data"]:
            loader = _shard(loader, rank, world, o["seed"] or 0)
        try:
            n_batches = len(loader)  # type: ignore[arg-type]
        except TypeError:
            raise TrainerError(
                "train_dataloader has no len(); the schedules need the number of batches. Use a "
                "DataLoader or a list of batches."
            ) from None
        accum = o["gradient_accumulation_steps"]
        steps_per_epoch = math.ceil(n_batches / accum)
        total_steps = steps_per_epoch * o["epochs"]
        if o["warmup_steps"] is not None:
            warmup = o["warmup_steps"]
        else:
            ratio = 0.1 if o["warmup_ratio"] is None else o["warmup_ratio"]
            warmup = int(ratio * total_steps)
        warmup = min(warmup, total_steps)

        params = self.parameters()
        if not params:
            raise TrainerError(
                f"{type(self).__name__} found nothing to train: the interventions have no trainable "
                "parameters. Use a trainable intervention type (RotatedSpaceIntervention, ...)"
                + (", or the 'iit' trainer to train the model itself." if self.type_name == "das" else ".")
            )
        self._before_training()
        bar = None
        try:
            optimizer = self._make_optimizer(params, o)
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda s: lr_factor(s, warmup, total_steps, o["lr_scheduler"])
            )
            temps = temperature_schedule(
                float(o["temperature_start"]), float(o["temperature_end"]), total_steps, o["temperature_schedule"]
            )
            tempered = any(hasattr(iv, "set_temperature") for iv in self._interventions())
            if tempered and temps:
                self.model.set_temperature(temps[0])  # optimizer step k runs at temps[k]

            step_module: nn.Module = _LossModule(self)
            if use_ddp:
                import inspect

                from torch.nn.parallel import DistributedDataParallel

                # the frozen model's buffers are synchronised once, at construction; sending them
                # again before each step is waste (torch >= 2.13 names this forward_sync_buffers)
                no_resend = (
                    {"forward_sync_buffers": False}
                    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                    else {"broadcast_buffers": False}
                )
                step_module = DistributedDataParallel(
                    step_module,
                    device_ids=[device.index] if device.type == "cuda" else None,
                    find_unused_parameters=bool(o["find_unused_parameters"]),
                    **no_resend,
                )

            history = TrainingHistory()
            collator = inputs_collator
            self.model.train()
            bar = tqdm(
                total=total_steps,
                desc=f"{self.type_name} training",
                disable=not o["progress"] or rank != 0,
                dynamic_ncols=True,
            )
            for epoch in range(o["epochs"]):
                sampler = getattr(loader, "sampler", None)
                if hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(epoch)
                epoch_metrics: dict[str, float] = {}
                epoch_count = 0
                window_loss = 0.0
                window_start = 0
                for i, batch in enumerate(loader):
                    if collator is not None:
                        batch = collator(batch)
                    batch = _to_device(batch, device)
                    if i == window_start:
                        window = min(accum, n_batches - window_start)
                    last_in_window = i == window_start + window - 1
                    sync = contextlib.nullcontext()
                    if use_ddp and not last_in_window:
                        sync = step_module.no_sync()  # type: ignore[operator]
                    with sync:
                        loss, logits, labels = step_module(batch)
                        (loss / window).backward()
                    window_loss += float(loss.detach()) / window
                    with torch.no_grad():
                        metrics = self._compute_metrics([logits.detach()], [labels])
                    b = _batch_len(batch)
                    for k, v in metrics.items():
                        if isinstance(v, (int, float)):
                            epoch_metrics[k] = epoch_metrics.get(k, 0.0) + float(v) * b
                    epoch_count += b
                    if not last_in_window:
                        continue
                    if o["max_grad_norm"] is not None:
                        torch.nn.utils.clip_grad_norm_(params, o["max_grad_norm"])
                    history.learning_rates.append(optimizer.param_groups[0]["lr"])
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    history.losses.append(window_loss)
                    if tempered and temps:
                        history.temperatures.append(temps[history.global_step])
                        if history.global_step + 1 < len(temps):
                            self.model.set_temperature(temps[history.global_step + 1])
                    history.global_step += 1
                    bar.update(1)
                    if history.global_step % o["log_every"] == 0:
                        post = {"epoch": epoch, "loss": round(window_loss, 4)}
                        if "accuracy" in metrics:
                            post["acc"] = round(float(metrics["accuracy"]), 3)
                        bar.set_postfix(post)
                    window_loss = 0.0
                    window_start = i + 1
                history.train_metrics.append(
                    {k: v / max(epoch_count, 1) for k, v in epoch_metrics.items()}
                )
                if o["eval_dataloader"] is not None:
                    result = self.evaluate(
                        o["eval_dataloader"],
                        self._compute_metrics,
                        o["eval_inputs_collator"] or collator,
                    )
                    history.eval_metrics.append(result)
                    self.model.train()
                    if rank == 0 and o["progress"]:
                        shown = ", ".join(f"{k} {v:.4f}" for k, v in result.items())
                        bar.write(f"epoch {epoch}: eval {shown}")
                if o["checkpoint_dir"] is not None and o["save_every_epoch"] and epoch < o["epochs"] - 1:
                    self._checkpoint(os.path.join(o["checkpoint_dir"], f"epoch-{epoch}"), rank, history)
            if o["checkpoint_dir"] is not None:
                self._checkpoint(os.path.join(o["checkpoint_dir"], "final"), rank, history)
        finally:
            if bar is not None:
                bar.close()
            self.model.eval()
            self._after_training()
        return history

    def _before_training(self) -> None:
        """Hook for subclasses (IIT turns the model's gradients on)."""

    def _after_training(self) -> None:
        """Hook for subclasses."""

    def _checkpoint(self, path: str, rank: int, history: TrainingHistory) -> None:
        history.checkpoints.append(path)
        if rank == 0:
            self.model.save(path, include_model=self.saves_model)
        _, world = _world()
        if world > 1:
            _dist().barrier()  # the checkpoint is complete before any process reads it

    # -- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(
        self,
        eval_dataloader: Iterable[Any],
        compute_metrics: Callable[..., dict[str, float]] | None = None,
        inputs_collator: Callable[[Any], Mapping[str, Any]] | None = None,
    ) -> dict[str, float]:
        """Every metric of ``compute_metrics`` over ``eval_dataloader``, averaged with weights by
        batch size; ``accuracy`` of the counterfactual labels is the IIA."""
        compute_metrics = compute_metrics or self._compute_metrics
        device = self.model.get_device()
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, float] = {}
        count = 0
        try:
            for batch in eval_dataloader:
                if inputs_collator is not None:
                    batch = inputs_collator(batch)
                batch = _to_device(batch, device)
                b = _batch_len(batch)
                metrics = self._eval_batch(batch, compute_metrics)
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * b
                count += b
        finally:
            self.model.train(was_training)
        if count == 0:
            raise TrainerError("the eval_dataloader gave no batches.")
        return {k: v / count for k, v in sums.items()}

    def _eval_batch(self, batch: Mapping[str, Any], compute_metrics: Callable[..., dict[str, float]]) -> dict[str, float]:
        logits = self.intervened_logits(batch)
        return dict(compute_metrics([logits], [self._labels(batch)]))

    def eval_alignment(
        self,
        eval_dataloader: Iterable[Any],
        compute_metrics: Callable[..., dict[str, float]] | None = None,
        inputs_collator: Callable[[Any], Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> float:
        """pyvene's evaluation: the batch-size-weighted ``accuracy`` (the IIA) as a float.

        :meth:`evaluate` returns every metric instead.
        """
        self._opts = self._merge(self.options, options)
        if compute_metrics is not None:
            self._compute_metrics = compute_metrics
        result = self.evaluate(eval_dataloader, compute_metrics, inputs_collator)
        if "accuracy" not in result:
            raise TrainerError(
                f"compute_metrics returned {sorted(result)} without 'accuracy'; eval_alignment "
                "reports the accuracy (use evaluate() for other metrics)."
            )
        return result["accuracy"]
