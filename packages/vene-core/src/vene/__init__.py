"""vene: interventions on the internals of PyTorch models.

``import vene as pv`` gives pyvene's public API: configs, ``IntervenableModel``, the static
interventions, the marker base classes, and (when the plugin packages are installed) the trainable
interventions of vene-train and the model factories of vene-hf.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below load on first use (PEP 562), so ``vene --help`` needs no torch
    from . import data_generators, models
    from ._basic_utils import (
        GET_LOC,
        closeness_to_permutation_loss,
        count_parameters,
        create_directory,
        embed_to_distrib,
        format_token,
        get_batch_size,
        get_list_depth,
        harmonic_sigmoid_boundary,
        random_permutation_matrix,
        set_seed,
        sigmoid_boundary,
        top_vals,
    )
    from ._compat_mapping import type_to_dimension_mapping, type_to_module_mapping
    from ._config import IntervenableConfig, RepresentationConfig
    from ._errors import (
        ArtifactError,
        BatchSizeError,
        ConfigError,
        MissingPluginError,
        PluginError,
        SiteResolutionError,
        SubspaceError,
        UnitLocationError,
        VeneError,
    )
    from ._interventions import (
        AdditionIntervention,
        BasisAgnosticIntervention,
        CollectIntervention,
        ConstantSourceIntervention,
        DistributedRepresentationIntervention,
        Intervention,
        InterventionOutput,
        LambdaIntervention,
        LocalistRepresentationIntervention,
        NoiseIntervention,
        SkipIntervention,
        SourcelessIntervention,
        SubtractionIntervention,
        TrainableIntervention,
        VanillaIntervention,
        ZeroIntervention,
        subspace_mask,
    )
    from ._model import (
        IntervenableModel,
        IntervenableModelOutput,
        ModelInputs,
        RepresentationsLike,
        SourceRepresentations,
        Sources,
        Subspaces,
        UnitLocations,
        call_model,
    )
    from ._model_compat import build_intervenable_model
    from ._models import (
        GRUConfig,
        GRUForClassification,
        GRUModel,
        MLPConfig,
        MLPForClassification,
        MLPModel,
        create_gru,
        create_gru_classifier,
        create_mlp_classifier,
    )
    from ._sites import EXPERT, LAYER, ComponentSpec, Site
    from ._units import Layout, Side, Unit
    from ._version import __version__
    from .artifacts import ArtifactStore
    from .hookspecs import CliCommand, hookimpl
    from .plugins import default_registry, get_plugin_manager

# public name -> the module that defines it; a name is imported on first access
_LAZY: dict[str, str] = {
    "data_generators": "vene.data_generators",
    "models": "vene.models",
    "GET_LOC": "vene._basic_utils",
    "closeness_to_permutation_loss": "vene._basic_utils",
    "count_parameters": "vene._basic_utils",
    "create_directory": "vene._basic_utils",
    "embed_to_distrib": "vene._basic_utils",
    "format_token": "vene._basic_utils",
    "get_batch_size": "vene._basic_utils",
    "get_list_depth": "vene._basic_utils",
    "harmonic_sigmoid_boundary": "vene._basic_utils",
    "random_permutation_matrix": "vene._basic_utils",
    "set_seed": "vene._basic_utils",
    "sigmoid_boundary": "vene._basic_utils",
    "top_vals": "vene._basic_utils",
    "type_to_dimension_mapping": "vene._compat_mapping",
    "type_to_module_mapping": "vene._compat_mapping",
    "IntervenableConfig": "vene._config",
    "RepresentationConfig": "vene._config",
    "ArtifactError": "vene._errors",
    "BatchSizeError": "vene._errors",
    "ConfigError": "vene._errors",
    "MissingPluginError": "vene._errors",
    "PluginError": "vene._errors",
    "SiteResolutionError": "vene._errors",
    "SubspaceError": "vene._errors",
    "UnitLocationError": "vene._errors",
    "VeneError": "vene._errors",
    "AdditionIntervention": "vene._interventions",
    "BasisAgnosticIntervention": "vene._interventions",
    "CollectIntervention": "vene._interventions",
    "ConstantSourceIntervention": "vene._interventions",
    "DistributedRepresentationIntervention": "vene._interventions",
    "Intervention": "vene._interventions",
    "InterventionOutput": "vene._interventions",
    "LambdaIntervention": "vene._interventions",
    "LocalistRepresentationIntervention": "vene._interventions",
    "NoiseIntervention": "vene._interventions",
    "SkipIntervention": "vene._interventions",
    "SourcelessIntervention": "vene._interventions",
    "SubtractionIntervention": "vene._interventions",
    "TrainableIntervention": "vene._interventions",
    "VanillaIntervention": "vene._interventions",
    "ZeroIntervention": "vene._interventions",
    "subspace_mask": "vene._interventions",
    "IntervenableModel": "vene._model",
    "IntervenableModelOutput": "vene._model",
    "ModelInputs": "vene._model",
    "RepresentationsLike": "vene._model",
    "SourceRepresentations": "vene._model",
    "Sources": "vene._model",
    "Subspaces": "vene._model",
    "UnitLocations": "vene._model",
    "call_model": "vene._model",
    "build_intervenable_model": "vene._model_compat",
    "GRUConfig": "vene._models",
    "GRUForClassification": "vene._models",
    "GRUModel": "vene._models",
    "MLPConfig": "vene._models",
    "MLPForClassification": "vene._models",
    "MLPModel": "vene._models",
    "create_gru": "vene._models",
    "create_gru_classifier": "vene._models",
    "create_mlp_classifier": "vene._models",
    "EXPERT": "vene._sites",
    "LAYER": "vene._sites",
    "ComponentSpec": "vene._sites",
    "Site": "vene._sites",
    "Layout": "vene._units",
    "Side": "vene._units",
    "Unit": "vene._units",
    "__version__": "vene._version",
    "ArtifactStore": "vene.artifacts",
    "CliCommand": "vene.hookspecs",
    "hookimpl": "vene.hookspecs",
    "default_registry": "vene.plugins",
    "get_plugin_manager": "vene.plugins",
}

__all__ = [
    "__version__",
    "hookimpl",
    "CliCommand",
    "get_plugin_manager",
    "default_registry",
    # configs and the model
    "RepresentationConfig",
    "IntervenableConfig",
    "IntervenableModel",
    "IntervenableModelOutput",
    "call_model",
    # the types of a call's arguments
    "ModelInputs",
    "Sources",
    "UnitLocations",
    "Subspaces",
    "SourceRepresentations",
    "RepresentationsLike",
    # sites
    "Site",
    "Side",
    "Unit",
    "Layout",
    "ComponentSpec",
    "LAYER",
    "EXPERT",
    # interventions
    "Intervention",
    "TrainableIntervention",
    "ConstantSourceIntervention",
    "SourcelessIntervention",
    "LocalistRepresentationIntervention",
    "DistributedRepresentationIntervention",
    "BasisAgnosticIntervention",
    "InterventionOutput",
    "VanillaIntervention",
    "AdditionIntervention",
    "SubtractionIntervention",
    "ZeroIntervention",
    "CollectIntervention",
    "NoiseIntervention",
    "SkipIntervention",
    "LambdaIntervention",
    "subspace_mask",
    # reference models
    "MLPConfig",
    "MLPModel",
    "MLPForClassification",
    "create_mlp_classifier",
    "GRUConfig",
    "GRUModel",
    "GRUForClassification",
    "create_gru",
    "create_gru_classifier",
    # pyvene's helpers and extension tables
    "models",
    "data_generators",
    "build_intervenable_model",
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
    "type_to_module_mapping",
    "type_to_dimension_mapping",
    # artifacts
    "ArtifactStore",
    # errors
    "VeneError",
    "ConfigError",
    "SiteResolutionError",
    "UnitLocationError",
    "BatchSizeError",
    "SubspaceError",
    "PluginError",
    "MissingPluginError",
    "ArtifactError",
]


def __getattr__(name: str) -> Any:
    """vene's own names, loaded on first use; then names that plugin packages provide
    (vene-train's interventions, vene-hf's factories)."""
    module = _LAZY.get(name)
    if module is not None:
        value = importlib.import_module(module)
        if module != f"vene.{name}":
            value = getattr(value, name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name.startswith("_") or importlib.util.find_spec(f"{__name__}.{name}") is not None:
        # private names, dunder probes, and submodules not imported yet (``from . import x``
        # asks here first; the AttributeError lets the import system load the submodule)
        raise AttributeError(f"module 'vene' has no attribute {name!r}")
    from .plugins import PLUGIN_PACKAGES, default_registry

    registry = default_registry()
    try:
        return registry.public(name)
    except KeyError:
        pass
    if name in PLUGIN_PACKAGES:
        registry.get("intervention_types", name)  # raises MissingPluginError naming the package
    raise AttributeError(f"module 'vene' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
