"""Reading artifacts saved by pyvene 0.1.8 (``IntervenableModel.save``) without executing anything.

A pyvene artifact is a folder with a ``config.json`` (representations as positional lists,
intervention types as class-path strings such as ``"<class 'pyvene.models.interventions.
RotatedSpaceIntervention'>"``) and one ``intkey_<key>.bin`` per intervention (a torch state dict).
Class strings are mapped by an allow-list to vene's registered types, never imported; tensors are
read with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain
containers. Everything else is an :class:`vene.ArtifactError` that says what was found.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from ._artifacts import CONFIG_NAME
from ._config import _REP_FIELDS, IntervenableConfig, RepresentationConfig
from ._errors import ArtifactError, MissingPluginError, VeneError

if TYPE_CHECKING:
    from torch import nn

    from .plugins import Registry

__all__ = ["PYVENE_TYPES", "is_pyvene_artifact", "load_pyvene_artifact", "read_pyvene_config"]

# pyvene's intervention classes that vene registers under the same name (core or vene-train)
PYVENE_TYPES: frozenset[str] = frozenset(
    f"pyvene.models.interventions.{name}"
    for name in (
        "VanillaIntervention", "AdditionIntervention", "SubtractionIntervention", "ZeroIntervention",
        "CollectIntervention", "NoiseIntervention", "SkipIntervention", "RotatedSpaceIntervention",
        "LowRankRotatedSpaceIntervention", "BoundlessRotatedSpaceIntervention",
        "SigmoidMaskRotatedSpaceIntervention", "SigmoidMaskIntervention",
        "PCARotatedSpaceIntervention", "AutoencoderIntervention", "JumpReLUAutoencoderIntervention",
    )
)
_CLASS = re.compile(r"^<class '([A-Za-z_][\w.]*)'>$")
# state-dict entries pyvene keeps as tensors that vene keeps as constructor arguments
_SCALARS = ("embed_dim", "interchange_dim")


def _type_name(text: Any, where: str) -> str:
    m = _CLASS.match(text) if isinstance(text, str) else None
    path = m.group(1) if m else text
    if path not in PYVENE_TYPES:
        raise ArtifactError(
            f"{where}: intervention type {text!r} is not one of pyvene's built-in interventions that "
            "vene reads (nothing named in an artifact is ever imported). Rebuild the intervention in "
            "vene and load its weights with load_intervention, or register a vene type of that name."
        )
    return str(path).rsplit(".", 1)[1]


def is_pyvene_artifact(directory: str) -> bool:
    """Whether ``directory`` holds a pyvene-format ``config.json`` (class-path type strings)."""
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(path):
        return False
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    types = data.get("intervention_types") if isinstance(data, Mapping) else None
    return "vene_version" not in data and isinstance(types, list) and any(
        isinstance(t, str) and t.startswith("<class '") for t in types
    )


def read_pyvene_config(data: Mapping[str, Any], where: str = CONFIG_NAME) -> tuple[IntervenableConfig, list[str]]:
    """vene's config for a pyvene ``config.json``, and pyvene's key for each intervention."""
    types = data.get("intervention_types")
    reps = data.get("representations")
    if not isinstance(types, list) or not isinstance(reps, list) or len(types) != len(reps):
        raise ArtifactError(
            f"{where}: a pyvene config needs lists 'representations' and 'intervention_types' of "
            "the same length."
        )
    out = []
    for i, (rep, typ) in enumerate(zip(reps, types, strict=True)):
        if isinstance(rep, list):
            if len(rep) > len(_REP_FIELDS):
                raise ArtifactError(f"{where}: representation {i} has {len(rep)} fields, pyvene has {len(_REP_FIELDS)}.")
            fields = dict(zip(_REP_FIELDS, rep, strict=False))
        elif isinstance(rep, Mapping):
            fields = dict(rep)
        else:
            raise ArtifactError(f"{where}: representation {i} is {type(rep).__name__}, not a list or dict.")
        # tensors (constant sources) live in the .bin files; the config holds a placeholder
        for name in ("source_representation", "hidden_source_representation", "intervention"):
            fields.pop(name, None)
        if fields.get("intervention_type") is not None:
            fields["intervention_type"] = _type_name(fields["intervention_type"], where)
        else:
            fields["intervention_type"] = _type_name(typ, where)
        try:
            out.append(RepresentationConfig.coerce(fields))
        except VeneError as e:
            raise ArtifactError(f"{where}: representation {i} is not valid: {e}") from None
    mode = data.get("mode", "parallel")
    keys = data.get("sorted_keys") or []
    if len(keys) != len(out) or not all(isinstance(k, str) and "/" not in k and "\\" not in k for k in keys):
        raise ArtifactError(f"{where}: 'sorted_keys' must name each intervention's weight file.")
    return IntervenableConfig(representations=out, mode=mode), keys


def _read_weights(path: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ArtifactError(f"missing {path}; the pyvene artifact is incomplete.") from None
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError) as e:
        raise ArtifactError(
            f"{path} is not a plain tensor file (torch.load(weights_only=True) refused it: {e}). "
            "vene never unpickles code; re-save the weights as tensors."
        ) from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArtifactError(f"{path} does not hold a dict of tensors.")
    return dict(state)


def _convert_tall_bases(iv: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """pyvene keeps a tall ``[n, k]`` orthonormal basis with torch's own ``orthogonal``
    parametrization (Householder map); where vene's module uses another map of the same
    ``original`` tensor, compute pyvene's basis with torch and assign it (the parametrization's
    ``right_inverse`` then stores it), so the loaded basis is exactly pyvene's."""
    from torch import nn
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import orthogonal

    suffix = ".parametrizations.weight.original"
    for key in [k for k in state if k.endswith(suffix)]:
        path = key[: -len(suffix)]
        try:
            module = iv.get_submodule(path)
        except AttributeError:
            continue
        original = state[key]
        if original.dim() != 2 or original.shape[0] == original.shape[1]:
            continue  # square: torch's map on both sides
        if not parametrize.is_parametrized(module, "weight"):
            continue
        maps: Any = module.parametrizations
        if type(maps.weight[0]).__name__ == "_Orthogonal":
            continue  # vene uses torch's map too: the raw state loads as is
        n, k = original.shape
        ref: Any = orthogonal(nn.Linear(k, n, bias=False), orthogonal_map="householder")
        ref_state = {k2[len(path) + 1:]: v for k2, v in state.items() if k2.startswith(path + ".")}
        ref.load_state_dict(ref_state)
        with torch.no_grad():
            basis = ref.weight.detach().clone()
            gram = basis.T @ basis
            if not torch.allclose(gram, torch.eye(k, dtype=gram.dtype), atol=1e-4):
                raise ArtifactError(
                    f"the pyvene basis {path} of {type(iv).__name__} is degenerate: torch's Householder "
                    "map reads each column's sign from the diagonal of the trained tensor and zeroes "
                    "a column whose diagonal entry left +-1 (weight decay does this), so its columns "
                    "are not orthonormal and no orthonormal basis reproduces it. Retrain in vene, "
                    "whose map keeps the signs in a fixed buffer."
                )
            module.weight = basis
        for k2 in list(ref_state):
            state.pop(f"{path}.{k2}")
        for k2, v in module.state_dict().items():
            state[f"{path}.{k2}"] = v.detach().clone()


def load_pyvene_artifact(
    directory: str, model: nn.Module, *, registry: Registry | None = None, **kwargs: Any
) -> Any:
    """An :class:`vene.IntervenableModel` on ``model`` from a folder that pyvene 0.1.8 saved."""
    from ._model import IntervenableModel

    where = os.path.join(directory, CONFIG_NAME)
    with open(where) as f:
        data = json.load(f)
    config, keys = read_pyvene_config(data, where)
    try:
        im = IntervenableModel(config, model, registry=registry) if registry else IntervenableModel(config, model)
    except MissingPluginError as e:
        raise ArtifactError(f"the pyvene artifact needs an intervention vene does not have here: {e}") from None
    except VeneError as e:
        raise ArtifactError(f"the pyvene artifact does not fit this model: {e}") from None
    for key, vkey in zip(keys, im.sorted_keys, strict=True):
        state = _read_weights(os.path.join(directory, f"intkey_{key}.bin"))
        iv = im.interventions[vkey]
        saved_dim = state.pop("embed_dim", None)
        if saved_dim is not None and iv.embed_dim is not None and int(saved_dim) != iv.embed_dim:
            raise ArtifactError(
                f"the pyvene artifact does not fit this model: {key} was saved for width "
                f"{int(saved_dim)}, this model's site has width {iv.embed_dim}."
            )
        interchange = state.pop("interchange_dim", None)
        if interchange is not None and hasattr(iv, "set_interchange_dim"):
            # pyvene records the site width for a low-rank basis, whose k coordinates it swaps all
            basis = getattr(getattr(iv, "rotate_layer", None), "weight", None)
            k = basis.shape[-1] if isinstance(basis, torch.Tensor) else None
            iv.set_interchange_dim(int(interchange) if k is None else min(int(interchange), k))
        if "source_representation" in state:
            iv.set_source_representation(state.pop("source_representation"))
        _convert_tall_bases(iv, state)
        expected = iv.state_dict()
        expected.pop("source_representation", None)
        if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in state):
            raise ArtifactError(
                f"the pyvene weights for {key} do not fit vene's {type(iv).__name__}: the file has "
                f"{ {k: tuple(v.shape) for k, v in state.items()} }, vene expects "
                f"{ {k: tuple(v.shape) for k, v in expected.items()} }."
            )
        iv.load_state_dict(state, strict=False)
    return im
