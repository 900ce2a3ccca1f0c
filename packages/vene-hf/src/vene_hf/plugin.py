"""vene-hf's entry point: site resolvers for Hugging Face models, the Hub store, factories, commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vene import hookimpl

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from torch import nn

    import vene
    from vene.cli import CliCommand


@hookimpl
def vene_resolve_site(model: nn.Module, representation: vene.RepresentationConfig) -> vene.Site | None:
    from .architectures import resolve_site

    return resolve_site(model, representation)


@hookimpl
def vene_site_families() -> Sequence[str]:
    from .architectures import FAMILIES

    return sorted(FAMILIES)


@hookimpl
def vene_artifact_store(location: str, options: Mapping[str, Any]) -> Any:
    from .hub import open_store

    return open_store(location, options)


@hookimpl
def vene_public_names() -> Mapping[str, Any]:
    from .factories import FACTORIES

    return FACTORIES


@hookimpl
def vene_cli_commands() -> Sequence[CliCommand]:
    from .main_job import commands

    return commands()


@hookimpl
def vene_patching_runner(model: nn.Module) -> Any:
    from .patching import runner_for

    return runner_for(model)
