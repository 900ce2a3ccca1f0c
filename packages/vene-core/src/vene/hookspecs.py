"""The plugin contract of vene: every hook a plugin may implement.

Plugins are found through the ``vene`` entry-point group and implement these hooks with
``from vene import hookimpl``. Hooks are called with keyword arguments; an implementation may
accept any subset of them. Specifications only grow: new behaviour arrives as a new optional
argument or a new hook, never as a rename.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy
from attrs import frozen

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence

    from torch import nn

    from ._config import RepresentationConfig
    from ._interventions import Intervention
    from ._sites import Site
    from .artifacts import ArtifactStore
    from .patching import Runner, SweepExecutor

__all__ = [
    "PROJECT",
    "CliCommand",
    "hookspec",
    "hookimpl",
    "vene_resolve_site",
    "vene_intervention_types",
    "vene_trainers",
    "vene_visualizers",
    "vene_artifact_store",
    "vene_site_families",
    "vene_cli_commands",
    "vene_public_names",
    "vene_patching_runner",
    "vene_sweep_executor",
]

PROJECT = "vene"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@frozen
class CliCommand:
    """A subcommand: ``vene <name>``; ``configure(parser)`` adds arguments, ``run(args)`` runs it.

    What ``vene_cli_commands`` returns (also importable as ``vene.CliCommand`` and
    ``vene.cli.CliCommand``).
    """

    name: str
    help: str
    run: Callable[[argparse.Namespace], int | None]
    configure: Callable[[argparse.ArgumentParser], None] | None = None


@hookspec(firstresult=True)
def vene_resolve_site(model: nn.Module, representation: RepresentationConfig) -> Site | None:
    """Resolve ``representation`` (layer, component, unit, moe_key) on ``model`` to a Site.

    Return a :class:`vene.Site` when this plugin knows the model's architecture and the
    component; return None to let the next resolver try. Raise a :class:`vene.VeneError` when the
    architecture is yours but the request is wrong (unknown component, layer out of range). The
    first non-None result wins; core's dotted-path resolver runs last.
    """


@hookspec
def vene_intervention_types() -> Sequence[type[Intervention]]:
    """Return the intervention classes this plugin provides.

    Each class is registered under its ``type_name`` (by default its class name), which is the
    name written into saved artifacts. A name provided by two plugins is an error.
    """


@hookspec
def vene_trainers() -> Sequence[type]:
    """Return the trainer classes this plugin provides (DAS, IIT, ...).

    Each class is registered under its ``type_name`` attribute (for instance ``"das"``), and is
    built as ``cls(intervenable_model, **options)``. A name provided by two plugins is an error.
    """


@hookspec
def vene_visualizers() -> Sequence[type]:
    """Return the visualizer classes this plugin provides.

    Each class is registered under its ``type_name`` attribute (for instance ``"heatmap"``).
    A name provided by two plugins is an error.
    """


@hookspec(firstresult=True)
def vene_artifact_store(location: str, options: Mapping[str, Any]) -> ArtifactStore | None:
    """Return an :class:`vene.ArtifactStore` for a non-local ``location`` (such as a Hub repo id).

    Return None when the location is not yours; the first store returned is used. ``options``
    holds the keyword arguments the user passed to ``save``/``load`` (``revision``, ``token``...).
    Local directories never reach this hook.
    """


@hookspec
def vene_site_families() -> Sequence[str]:
    """Return the model families (e.g. ``"gpt2"``, ``"llama"``) this plugin's site resolver knows.

    Only read by ``vene plugins`` to say what each resolver supports; resolution itself asks
    ``vene_resolve_site``. Keep it cheap: return names, do not import the models.
    """


@hookspec
def vene_cli_commands() -> Sequence[CliCommand]:
    """Return :class:`vene.CliCommand` records to add as ``vene <name>`` subcommands."""


@hookspec
def vene_public_names() -> Mapping[str, Any]:
    """Return extra names to expose as ``vene.<name>`` (model factories, helpers).

    Intervention types are exposed automatically and need not be listed here.
    """


@hookspec(firstresult=True)
def vene_patching_runner(model: nn.Module) -> Runner | None:
    """Return a :class:`vene.patching.Runner` that runs ``model`` for patching sweeps.

    Return None when the model is not yours; the first runner returned is used, and core's plain
    :class:`~vene.patching.Runner` (full runs, no prefix reuse) when none is. A runner may reuse
    the unpatched prefix's state (``supports_prefix``/``prefill``/``run_suffix``) and compute the
    logits only at the positions the metric reads; results must not depend on it.
    """


@hookspec(firstresult=True)
def vene_sweep_executor(name: str, options: Mapping[str, Any]) -> SweepExecutor | None:
    """Return a :class:`vene.patching.SweepExecutor` for ``vene.patching.sweep(..., executor=name)``.

    Return None when ``name`` is not yours; the first executor returned is used. ``options`` are
    the ``executor_options`` the user passed (worker count, cluster address...). An executor runs
    sweep tasks with :func:`vene.patching.run_task` wherever it likes and must give the same
    results as core's ``"local"`` executor, which runs them in the calling process.
    """
