"""vene: interventions on the internals of PyTorch models.

``import vene as pv`` gives pyvene's public API: configs, ``IntervenableModel``, the static
interventions, the marker base classes, and (when the plugin packages are installed) the trainable
interventions of vene-train and the model factories of vene-hf.
"""

from __future__ import annotations

from typing import Any

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
    """Names that plugin packages provide (vene-train's interventions, vene-hf's factories)."""
    if name.startswith("_"):  # private submodules being imported, dunder probes
        raise AttributeError(f"module 'vene' has no attribute {name!r}")
    from .plugins import PLUGIN_PACKAGES

    registry = default_registry()
    try:
        return registry.public(name)
    except KeyError:
        pass
    if name in PLUGIN_PACKAGES:
        registry.get("intervention_types", name)  # raises MissingPluginError naming the package
    raise AttributeError(f"module 'vene' has no attribute {name!r}")
