"""Artifacts: ``IntervenableModel.save``/``load`` and the weights-only save and load.

``save`` writes ``config.json`` (the representations, the intervention type *names* and their
constructor arguments, the sites, the base model's name and revision when known) and
``interventions.safetensors``. ``load`` resolves the types by registered name through the plugin
registry and checks that the artifact fits the model: nothing is ever unpickled and no module is
imported by a name read from a file. Non-local locations go through an :class:`ArtifactStore`
plugin (vene-hf's Hub store).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ._config import _REP_FIELDS, IntervenableConfig, RepresentationConfig
from ._errors import ArtifactError, ConfigError, MissingPluginError, VeneError
from ._interventions import Intervention
from ._version import __version__
from .artifacts import (
    CONFIG_NAME,
    MODEL_WEIGHTS_NAME,
    TRAINABLE_MODEL_WEIGHTS_NAME,
    WEIGHTS_NAME,
    ArtifactStore,
)
from .plugins import Registry, default_registry, missing_store_hint, type_name

if TYPE_CHECKING:
    from ._model import IntervenableModel

__all__ = ["save", "load", "save_intervention", "load_intervention", "weights", "load_weights"]


def _type_names(im: IntervenableModel) -> list[str]:
    names = []
    for s in im._slots:
        iv = im.interventions[s.key]
        name = type_name(type(iv))
        try:
            registered = im.registry.intervention_type(name)
        except MissingPluginError:
            registered = None
        if registered is not type(iv):
            raise ArtifactError(
                f"{type(iv).__name__} is not a registered intervention type, so an artifact "
                "could not be loaded again; register it through a vene plugin "
                "(vene_intervention_types) first."
            )
        names.append(name)
    return names

def weights(im: IntervenableModel) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    seen: list[Intervention] = []
    for s in im._slots:
        iv = im.interventions[s.key]
        if any(iv is x for x in seen):
            continue  # linked: stored once, under the first key
        seen.append(iv)
        for k, v in iv.state_dict().items():
            out[f"{s.key}.{k}"] = v.detach().contiguous().cpu()
    return out

def save(
    im: IntervenableModel,
    save_directory: str,
    save_to_hf_hub: bool = False,
    hf_repo_name: str | None = None,
    include_model: bool = False,
    **options: Any,
) -> str:
    """Write ``config.json`` and ``interventions.safetensors`` (and push them, for the Hub)."""
    from safetensors.torch import save_file, save_model

    os.makedirs(save_directory, exist_ok=True)
    kwargs = [im.interventions[s.key].init_kwargs for s in im._slots]
    data = im.config.to_dict(_type_names(im))
    data["intervention_kwargs"] = kwargs
    data["vene_version"] = __version__
    data["base_model"] = _base_model_info(im.model)
    data["sites"] = [
        {"module": s.site.module, "side": s.site.side.value, "dim": s.site.dim} for s in im._slots
    ]
    with open(os.path.join(save_directory, CONFIG_NAME), "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    save_file(weights(im), os.path.join(save_directory, WEIGHTS_NAME), metadata={"format": "pt"})
    if include_model:
        save_model(im.model, os.path.join(save_directory, MODEL_WEIGHTS_NAME))
    if save_to_hf_hub:
        if not hf_repo_name:
            raise ConfigError("save_to_hf_hub=True needs hf_repo_name='user/repo'.")
        store = _store(im, hf_repo_name, options)
        return store.push(save_directory, hf_repo_name, **options)
    return save_directory


def _store(im: IntervenableModel, location: str, options: Mapping[str, Any]) -> ArtifactStore:
    store = im.registry.pm.hook.vene_artifact_store(location=location, options=dict(options))
    if store is None:
        raise MissingPluginError(
            f"{location!r} is not a local directory and no loaded plugin opens it; "
            f"{missing_store_hint(im.registry.pm)}"
        )
    return store


def load(
    cls: type[IntervenableModel],
    load_directory: str,
    model: nn.Module,
    *,
    registry: Registry | None = None,
    **options: Any,
) -> IntervenableModel:
    """Rebuild a saved IntervenableModel on ``model`` (a local directory or a store location)."""
    registry = registry or default_registry()
    directory = load_directory
    if not os.path.isdir(directory):
        store = registry.pm.hook.vene_artifact_store(location=load_directory, options=dict(options))
        if store is None:
            raise ArtifactError(
                f"{load_directory!r} is not a directory, and no loaded plugin opens it as a "
                f"remote location; {missing_store_hint(registry.pm)}"
            )
        directory = store.fetch(load_directory, **options)
    from ._pyvene_artifacts import is_pyvene_artifact, load_pyvene_artifact

    if is_pyvene_artifact(directory):  # a folder pyvene 0.1.8 saved: read it without executing anything
        return load_pyvene_artifact(directory, model, registry=registry)
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.exists(path):
        raise ArtifactError(f"{directory!r} holds no {CONFIG_NAME}; it is not a vene artifact.")
    with open(path) as f:
        data = json.load(f)
    try:
        config = IntervenableConfig.from_dict(data)
    except (ConfigError, KeyError, TypeError) as e:
        raise ArtifactError(f"{path} is not a valid vene config: {e}") from None
    reps = []
    for rep_data, rep in zip(data["representations"], config.representations):
        name = rep_data.get("intervention_type")
        try:
            registry.intervention_type(name)
        except MissingPluginError as e:
            raise ArtifactError(f"the artifact uses intervention type {name!r}: {e}") from None
        reps.append(RepresentationConfig.coerce({**_rep_fields(rep), "intervention_type": name}))
    config = IntervenableConfig(representations=reps, mode=config.mode)
    try:
        obj = cls(config, model, registry=registry, _saved_kwargs=data.get("intervention_kwargs"))
    except VeneError as e:
        raise ArtifactError(f"the artifact does not fit this model: {e}") from None
    for s, saved in zip(obj._slots, data.get("sites", [])):
        if saved.get("dim") is not None and s.site.dim is not None and saved["dim"] != s.site.dim:
            raise ArtifactError(
                f"the artifact does not fit this model: {s.key} was saved for width "
                f"{saved['dim']}, but this model's site {s.site.module} has width {s.site.dim}."
            )
    load_weights(obj, os.path.join(directory, WEIGHTS_NAME))
    return obj

def load_weights(im: IntervenableModel, path: str) -> None:
    from safetensors.torch import load_file

    if not os.path.exists(path):
        raise ArtifactError(f"missing {path}; the artifact is incomplete.")
    weights = load_file(path)
    seen: list[Intervention] = []
    for s in im._slots:
        iv = im.interventions[s.key]
        if any(iv is x for x in seen):
            continue
        seen.append(iv)
        prefix = f"{s.key}."
        mine = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        expected = iv.state_dict()
        for k, v in expected.items():
            if k not in mine:
                raise ArtifactError(
                    f"the artifact has no weight {prefix}{k}; it was saved for other interventions."
                )
            if mine[k].shape != v.shape:
                raise ArtifactError(
                    f"the artifact does not fit this model: {prefix}{k} has shape "
                    f"{tuple(mine[k].shape)}, the intervention expects {tuple(v.shape)}."
                )
        for k in set(mine) - set(expected):
            if k in iv._buffers and iv._buffers[k] is None:  # an empty buffer the file fills
                iv._buffers[k] = mine[k]
                expected[k] = mine[k]
        extra = set(mine) - set(expected)
        if extra:
            raise ArtifactError(f"the artifact has unexpected weights {sorted(extra)} for {s.key}.")
        device = next((t.device for t in expected.values()), None)
        iv.load_state_dict({k: v.to(device) if device is not None else v for k, v in mine.items()})


def save_intervention(im: IntervenableModel, save_directory: str, include_model: bool = True) -> None:
    """The interventions' weights only (``interventions.safetensors``); with ``include_model``
    (pyvene's default) also the wrapped model's parameters that need gradients, as pyvene does
    (``model_trainable.safetensors``, written only when there are any: after
    ``enable_model_gradients()``, for interchange intervention training)."""
    from safetensors.torch import save_file

    os.makedirs(save_directory, exist_ok=True)
    save_file(weights(im), os.path.join(save_directory, WEIGHTS_NAME))
    path = os.path.join(save_directory, TRAINABLE_MODEL_WEIGHTS_NAME)
    trainable = {n: p.detach().contiguous().cpu() for n, p in im.model.named_parameters() if p.requires_grad}
    if include_model and trainable:
        save_file(trainable, path)
    elif os.path.exists(path):
        os.remove(path)  # a stale file from an earlier save would be loaded as this one's


def load_intervention(im: IntervenableModel, load_directory: str, include_model: bool = True) -> None:
    """Load what :func:`save_intervention` wrote, in place; with ``include_model`` also the
    model's trained parameters when the directory holds them."""
    load_weights(im, os.path.join(load_directory, WEIGHTS_NAME))
    path = os.path.join(load_directory, TRAINABLE_MODEL_WEIGHTS_NAME)
    if include_model and os.path.exists(path):
        _load_model_params(im.model, path)


def _load_model_params(model: nn.Module, path: str) -> None:
    from safetensors.torch import load_file

    saved = load_file(path)
    params = dict(model.named_parameters())
    unknown = sorted(set(saved) - set(params))
    if unknown:
        raise ArtifactError(
            f"{path} holds parameters this model does not have: {unknown[:5]}; it was saved from "
            "another model. Pass include_model=False to load the interventions only."
        )
    for name, value in saved.items():
        if value.shape != params[name].shape:
            raise ArtifactError(
                f"{path}: parameter {name} has shape {tuple(value.shape)}, the model's has "
                f"{tuple(params[name].shape)}; it was saved from another model."
            )
    with torch.no_grad():
        for name, value in saved.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def _rep_fields(rep: RepresentationConfig) -> dict[str, Any]:
    return {f: getattr(rep, f) for f in _REP_FIELDS}


def _base_model_info(model: nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "config", None)
    info: dict[str, Any] = {"class": type(model).__name__}
    name = getattr(cfg, "_name_or_path", None) or getattr(cfg, "name_or_path", None)
    if name:
        info["name_or_path"] = name
    rev = getattr(cfg, "_commit_hash", None)
    if rev:
        info["revision"] = rev
    return info
