"""The trainers' options: one frozen, validated record (in the style of ``TrainingArguments``).

Each field carries its meaning in ``metadata["help"]``; a bad value raises a
:class:`TrainerError` naming the option and what it accepts. A trainer is built with keyword
options (``DASTrainer(im, lr=1e-2)``) which :meth:`TrainerOptions.from_kwargs` reads (pyvene's
names ``warm_up_steps``, ``num_epochs`` and ``learning_rate`` included, and a "did you mean" for a
misspelled one); :meth:`TrainerOptions.updated` gives the options of one call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
from attrs import field, frozen

from vene.sites import nearest

from ._callbacks import check_callbacks
from ._errors import TrainerError
from ._schedules import LR_SCHEDULERS, TEMPERATURE_SCHEDULES

__all__ = ["OPTIMIZERS", "TrainerOptions", "IITOptions"]

#: The optimizers named by a string; any ``f(params, lr) -> optimizer`` works too.
OPTIMIZERS = ("adam", "adamw", "sgd")

#: pyvene's (and transformers') names of options, and the names they stand for.
ALIASES = {"warm_up_steps": "warmup_steps", "num_epochs": "epochs", "learning_rate": "lr"}

_T = TypeVar("_T", bound="TrainerOptions")


def _int_at_least(low: int) -> Callable[[Any, attrs.Attribute, Any], None]:
    def check(_: Any, attribute: attrs.Attribute, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            kind = "a positive int" if low == 1 else f"an int >= {low}"
            raise TrainerError(f"{attribute.name} must be {kind}, got {value!r}.")

    return check


def _optional_int_at_least_0(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise TrainerError(f"{attribute.name} must be an int >= 0, got {value!r}.")


def _optional_int(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TrainerError(f"{attribute.name} must be an int or None, got {value!r}.")


def _number(
    low: float | None = None, high: float | None = None, strict: bool = False, optional: bool = False
) -> Callable[[Any, attrs.Attribute, Any], None]:
    def check(_: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None and optional:
            return
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and low is not None:
            ok = value > low if strict else value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            if low is not None and high is not None:
                want = f"within [{low}, {high}]"
            elif strict:
                want = "positive"
            else:
                want = f"a number >= {low}" if low is not None else "a number"
            none = " (or None)" if optional else ""
            raise TrainerError(f"{attribute.name} must be {want}{none}, got {value!r}.")

    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, attrs.Attribute, Any], None]:
    def check(_: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in choices:
            names = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
            raise TrainerError(f"{attribute.name} must be {names}, got {value!r}.")

    return check


def _optimizer(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, str) and value in OPTIMIZERS:
        return
    if callable(value) and not isinstance(value, str):
        return
    raise TrainerError(
        f"optimizer must be one of {sorted(OPTIMIZERS)} or a function (params, lr) -> optimizer, "
        f"got {value!r}."
    )


def _optional_callable(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and not callable(value):
        raise TrainerError(f"{attribute.name} must be a function or None, got {type(value).__name__}.")


def _optional_bool(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise TrainerError(f"{attribute.name} must be True, False or None, got {value!r}.")


def _bool(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, bool):
        raise TrainerError(f"{attribute.name} must be True or False, got {value!r}.")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@frozen(kw_only=True)
class TrainerOptions:
    """The options of the DAS and IIT trainers; ``attrs.fields(TrainerOptions)`` lists them with
    their ``metadata["help"]``. Values are checked when the record is made."""

    # -- optimisation ---------------------------------------------------------------------------
    lr: float = field(default=1e-3, validator=_number(0, strict=True), metadata=_help("peak learning rate"))
    epochs: int = field(default=10, validator=_int_at_least(0), metadata=_help("passes over the data"))
    gradient_accumulation_steps: int = field(
        default=1,
        validator=_int_at_least(1),
        metadata=_help(
            "micro-batches per optimizer step (the loss is averaged over them; a short last "
            "window is averaged over its own size)"
        ),
    )
    warmup_steps: int | None = field(
        default=None,
        validator=_optional_int_at_least_0,
        metadata=_help("warm-up length in optimizer steps (not with warmup_ratio)"),
    )
    warmup_ratio: float | None = field(
        default=None,
        validator=_number(0, 1, optional=True),
        metadata=_help("warm-up length as a fraction of the optimizer steps; 0.1 when neither is given"),
    )
    lr_scheduler: str = field(
        default="linear",
        validator=_one_of(LR_SCHEDULERS),
        metadata=_help("after warm-up: linear decay to 0, cosine decay, or constant"),
    )
    optimizer: str | Callable[..., Any] = field(
        default="adam",
        validator=_optimizer,
        metadata=_help("'adam', 'adamw', 'sgd', or a function (params, lr) -> optimizer"),
    )
    weight_decay: float = field(
        default=0.0, validator=_number(0), metadata=_help("weight decay of the named optimizers")
    )
    max_grad_norm: float | None = field(
        default=None,
        validator=_number(0, strict=True, optional=True),
        metadata=_help("clip the gradients' norm to this value"),
    )
    # -- Boundless DAS --------------------------------------------------------------------------
    temperature_start: float = field(
        default=50.0, validator=_number(), metadata=_help("temperature of the first optimizer step")
    )
    temperature_end: float = field(
        default=0.1, validator=_number(), metadata=_help("temperature of the last optimizer step")
    )
    temperature_schedule: str = field(
        default="linear",
        validator=_one_of(TEMPERATURE_SCHEDULES),
        metadata=_help("temperatures evenly spaced (linear) or with a constant ratio (geometric)"),
    )
    boundary_loss_weight: float = field(
        default=0.0,
        validator=_number(),
        metadata=_help("adds weight x the sum of the intervention boundaries to the loss"),
    )
    # -- the run --------------------------------------------------------------------------------
    seed: int | None = field(
        default=None,
        validator=_optional_int,
        metadata=_help("seeds random, numpy (if installed) and torch when training starts"),
    )
    eval_dataloader: Any = field(
        default=None, metadata=_help("evaluated after each epoch into history.eval_metrics")
    )
    eval_inputs_collator: Callable[[Any], Mapping[str, Any]] | None = field(
        default=None,
        validator=_optional_callable,
        metadata=_help("the collator of the eval_dataloader (default: the training one)"),
    )
    checkpoint_dir: str | None = field(
        default=None, metadata=_help("write <dir>/epoch-<k> after each epoch but the last, and <dir>/final")
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata=_help(
            "a checkpoint directory (<checkpoint_dir>/epoch-<k>) to continue from: weights, optimizer, "
            "schedule, history and random state are restored and training goes on at epoch k + 1"
        ),
    )
    save_every_epoch: bool = field(
        default=True, validator=_bool, metadata=_help("write the per-epoch checkpoints too")
    )
    progress: bool = field(
        default=True, validator=_bool, metadata=_help("tqdm bar and per-epoch evaluation lines")
    )
    log_every: int = field(
        default=1,
        validator=_int_at_least(1),
        metadata=_help("update the bar and call the callbacks' on_log every this many steps"),
    )
    callbacks: tuple[Any, ...] = field(
        default=(),
        converter=check_callbacks,
        metadata=_help("objects with on_log and/or on_epoch_end methods, called on rank 0 (see TrainerCallback)"),
    )
    # -- reading batches ------------------------------------------------------------------------
    input_key: str | None = field(
        default=None,
        metadata=_help(
            "the model input a tensor is passed as (default: inputs_embeds for floating point, "
            "input_ids otherwise)"
        ),
    )
    unit_locations: Any = field(
        default=None, metadata=_help("unit locations of batches without them: a value or f(batch)")
    )
    subspaces: Any = field(default=None, metadata=_help("subspaces of batches without them: a value or f(batch)"))
    logits_fn: Callable[[Any], Any] | None = field(
        default=None, validator=_optional_callable, metadata=_help("outputs -> logits")
    )
    forward_fn: Callable[..., Any] | None = field(
        default=None,
        validator=_optional_callable,
        metadata=_help("forward_fn(intervenable_model, batch) -> outputs replaces the intervened forward"),
    )
    # -- distributed ----------------------------------------------------------------------------
    distributed: bool | None = field(
        default=None,
        validator=_optional_bool,
        metadata=_help("None: DDP when a process group of more than one process runs; True: require it; False: off"),
    )
    shard_data: bool = field(
        default=True, validator=_bool, metadata=_help("give each process its shard of the train data")
    )
    find_unused_parameters: bool = field(
        default=False, validator=_bool, metadata=_help("DDP's flag, for batches that leave an intervention unused")
    )

    def __attrs_post_init__(self) -> None:
        if self.warmup_steps is not None and self.warmup_ratio is not None:
            raise TrainerError("pass warmup_steps or warmup_ratio, not both.")
        if self.temperature_schedule == "geometric" and (self.temperature_start <= 0 or self.temperature_end <= 0):
            raise TrainerError(
                "a geometric temperature schedule needs positive temperature_start and temperature_end, "
                f"got {self.temperature_start!r} and {self.temperature_end!r}."
            )

    @classmethod
    def names(cls) -> list[str]:
        """Every option's name."""
        return [a.name for a in attrs.fields(cls)]

    @classmethod
    def from_kwargs(cls: type[_T], owner: str = "trainer", **kwargs: Any) -> _T:
        """The options from keyword arguments (``owner`` names the trainer in errors)."""
        return cls().updated(owner, **kwargs)

    def updated(self: _T, owner: str = "trainer", **kwargs: Any) -> _T:
        """These options with ``kwargs`` replacing some of them (pyvene's names accepted)."""
        return attrs.evolve(self, **_canonical(type(self), owner, kwargs))

    def warmup(self, total_steps: int) -> int:
        """The warm-up length, in optimizer steps, of a run of ``total_steps``."""
        if self.warmup_steps is not None:
            warmup = self.warmup_steps
        else:
            warmup = int((0.1 if self.warmup_ratio is None else self.warmup_ratio) * total_steps)
        return min(warmup, total_steps)


@frozen(kw_only=True)
class IITOptions(TrainerOptions):
    """The options of the IIT trainer: the trainers' options and the weights of its two losses."""

    iit_loss_weight: float = field(
        default=1.0, validator=_number(), metadata=_help("weight of the counterfactual (interchange) loss")
    )
    task_loss_weight: float = field(
        default=1.0, validator=_number(), metadata=_help("weight of the task loss of the plain base run")
    )
    train_interventions: bool = field(
        default=True, validator=_bool, metadata=_help("whether trainable interventions learn too")
    )


def _canonical(cls: type[TrainerOptions], owner: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    valid = cls.names()
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        name = ALIASES.get(key, key)
        if name not in valid:
            choices = sorted(set(valid) | set(ALIASES))
            hint = nearest(key, choices, n=3, cutoff=0.6)
            raise TrainerError(f"unknown {owner} option {key!r}.{hint} Options: {', '.join(choices)}.")
        if key == "warm_up_steps" and isinstance(value, float) and 0 <= value < 1:
            name = "warmup_ratio"  # pyvene's default, 0.1, is a ratio
        out[name] = value
    return out
