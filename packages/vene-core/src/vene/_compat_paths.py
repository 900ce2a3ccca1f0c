"""pyvene's module paths under ``vene.models``: the one table of what each path re-exports.

``from pyvene.models.interventions import X`` becomes ``from vene.models.interventions import X``.
Every file under ``vene/models`` is a stub that asks :func:`exports` for its names; each name is
resolved on first access from its home in vene, so nothing is implemented twice and a name that
a plugin provides (vene-train's interventions, vene-hf's factories) is looked up through
``vene.<name>`` and fails with :class:`vene.MissingPluginError` naming the package when that
plugin is not installed. What pyvene has and vene deliberately lacks is listed, with the
replacement, in docs/design.md ("Departures from pyvene").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["PATHS", "exports"]

_TOP = "vene"
_BASIC = "vene._basic_utils"
_MAP = "vene._compat_mapping"

_INTERVENTIONS = [
    "Intervention", "TrainableIntervention", "ConstantSourceIntervention", "SourcelessIntervention",
    "LocalistRepresentationIntervention", "DistributedRepresentationIntervention",
    "BasisAgnosticIntervention", "InterventionOutput", "VanillaIntervention", "AdditionIntervention",
    "SubtractionIntervention", "ZeroIntervention", "CollectIntervention", "NoiseIntervention",
    "SkipIntervention", "RotatedSpaceIntervention", "LowRankRotatedSpaceIntervention",
    "BoundlessRotatedSpaceIntervention", "SigmoidMaskRotatedSpaceIntervention",
    "SigmoidMaskIntervention", "PCARotatedSpaceIntervention", "AutoencoderIntervention",
    "JumpReLUAutoencoderIntervention",
]
_BASIC_NAMES = [
    "set_seed", "count_parameters", "sigmoid_boundary", "harmonic_sigmoid_boundary",
    "random_permutation_matrix", "closeness_to_permutation_loss", "embed_to_distrib",
    "format_token", "top_vals", "get_list_depth", "get_batch_size", "create_directory", "GET_LOC",
]
_CONSTANTS = [
    "CONST_INPUT_HOOK", "CONST_OUTPUT_HOOK", "CONST_GRAD_HOOK", "split_heads", "split_half",
    "split_three", "split_and_select", "split_head_and_permute",
]
# family subpackage -> (module name, factories it holds)
_FAMILIES: dict[str, tuple[str, list[str]]] = {
    "gpt2": ("modelings_intervenable_gpt2", ["create_gpt2", "create_gpt2_lm", "create_gpt2_classifier"]),
    "gpt_neo": ("modelings_intervenable_gpt_neo", ["create_gpt_neo"]),
    "gpt_neox": ("modelings_intervenable_gpt_neox", ["create_gpt_neox"]),
    "llama": ("modelings_intervenable_llama", ["create_llama"]),
    "mistral": ("modellings_intervenable_mistral", ["create_mistral"]),
    "gemma": ("modelings_intervenable_gemma", ["create_gemma"]),
    "gemma2": ("modelings_intervenable_gemma2", ["create_gemma2"]),
    "qwen2": ("modelings_intervenable_qwen2", ["create_qwen2"]),
    "olmo": ("modelings_intervenable_olmo", ["create_olmo"]),
    "llava": ("modelings_intervenable_llava", ["create_llava"]),
    "esm": ("modelings_intervenable_esm", []),
    "blip": ("modelings_intervenable_blip", ["create_blip"]),
    "backpack_gpt2": ("modelings_intervenable_backpack_gpt2", ["create_backpack_gpt2"]),
}


def _from(home: str, names: list[str]) -> dict[str, str]:
    return {n: home for n in names}


# path (relative to vene) -> {name: home module it is read from}
PATHS: dict[str, dict[str, str]] = {
    "models": {},
    "models.interventions": {**_from(_TOP, _INTERVENTIONS), "sigmoid_boundary": _BASIC},
    "models.configuration_intervenable_model": _from(
        _TOP, ["IntervenableConfig", "RepresentationConfig", "VanillaIntervention"]
    ),
    "models.intervenable_base": _from(
        _TOP, ["IntervenableModel", "IntervenableModelOutput", "build_intervenable_model"]
    ),
    "models.basic_utils": _from(_BASIC, _BASIC_NAMES),
    "models.constants": _from(_MAP, _CONSTANTS),
    "models.intervenable_modelcard": _from(_MAP, ["type_to_module_mapping", "type_to_dimension_mapping"]),
    "models.modeling_utils": _from(_TOP, ["LambdaIntervention"]),
    "models.intervention_utils": {},
    "models.layers": {},
    "models.mlp": {},
    "models.mlp.modelings_mlp": _from(_TOP, ["MLPConfig", "MLPModel", "MLPForClassification"])
    | {"MLPBlock": "vene._models.mlp", "MLPModelOutput": "vene._models._output"},
    "models.mlp.modelings_intervenable_mlp": _from(_TOP, ["create_mlp_classifier"]),
    "models.gru": {},
    "models.gru.modelings_gru": _from(_TOP, ["GRUConfig", "GRUModel", "GRUForClassification"])
    | {"GRUCell": "vene._models.gru", "GRUModelOutput": "vene._models._output"},
    "models.gru.modelings_intervenable_gru": _from(_TOP, ["create_gru", "create_gru_classifier"]),
    "data_generators": {},
    "data_generators.causal_model": _from(_TOP, ["CausalModel"]),
    "analyses": {},
    "analyses.visualization": {},
    **{f"models.{fam}": {} for fam in _FAMILIES},
    **{f"models.{fam}.{mod}": _from(_TOP, fns) for fam, (mod, fns) in _FAMILIES.items()},
    "models.blip.modelings_intervenable_blip_itm": _from(_TOP, ["create_blip_itm"]),
}


def _children(path: str) -> list[str]:
    depth = path.count(".") + 1 if path else 0
    prefix = f"{path}." if path else ""
    return sorted(p.rsplit(".", 1)[-1] for p in PATHS if p.startswith(prefix) and p.count(".") == depth)


def exports(module_name: str) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for the stub module ``module_name`` (``vene.models...``)."""
    path = module_name[len("vene."):]
    table = PATHS[path]
    subs = _children(path)

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        if name in subs:
            return importlib.import_module(f"{module_name}.{name}")
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*table, *subs])

    return __getattr__, __dir__, sorted(table)
