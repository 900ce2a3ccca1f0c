"""Building the plugin manager and the registries of named things plugins provide.

Nothing happens at import: :func:`get_plugin_manager` builds a manager, registers core's
built-ins through the same door as any plugin, then loads the ``vene`` entry points unless told
not to. :func:`default_registry` caches the registry of the default manager for the process.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import Iterable
from typing import Any

import pluggy
from attrs import frozen

from . import hookspecs
from ._errors import MissingPluginError, PluginError, nearest
from .hookspecs import PROJECT, hookimpl

__all__ = [
    "hookimpl",
    "get_plugin_manager",
    "Registry",
    "default_registry",
    "reset_default_registry",
    "PLUGIN_PACKAGES",
    "PROVIDED_NAMES",
    "provided_names",
    "installed_version",
    "type_name",
    "check_hooks",
]

# The one table of the well-known names each plugin distribution provides, by kind. Core reads it
# to name the package to install when a name is missing; the plugins build what they register
# from it (vene-hf's factories, vene-train's interventions and public names), so adding a name
# is one edit here.
PROVIDED_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "vene-train": {
        "intervention_types": (
            "RotatedSpaceIntervention",
            "LowRankRotatedSpaceIntervention",
            "BoundlessRotatedSpaceIntervention",
            "SigmoidMaskRotatedSpaceIntervention",
            "SigmoidMaskIntervention",
            "PCARotatedSpaceIntervention",
            "AutoencoderIntervention",
            "JumpReLUAutoencoderIntervention",
            "LoreftIntervention",
            "NoreftIntervention",
            "DireftIntervention",
            "ConsreftIntervention",
        ),
        "trainers": ("das", "iit"),
        "public_names": ("CausalModel",),
    },
    "vene-hf": {
        "public_names": (
            "create_gpt2",
            "create_gpt2_lm",
            "create_gpt_neo",
            "create_gpt_neox",
            "create_gptj",
            "create_llama",
            "create_mistral",
            "create_gemma",
            "create_qwen2",
            "create_bert",
            "create_t5",
            "create_backpack_gpt2",
        ),
    },
}

# name -> the distribution that provides it (derived from PROVIDED_NAMES)
PLUGIN_PACKAGES: dict[str, str] = {
    name: package for package, kinds in PROVIDED_NAMES.items() for names in kinds.values() for name in names
}


def provided_names(package: str, kind: str) -> tuple[str, ...]:
    """The names of ``kind`` (``"intervention_types"``, ``"trainers"``, ``"public_names"``) that
    ``package`` provides, from :data:`PROVIDED_NAMES`."""
    if package not in PROVIDED_NAMES:
        raise PluginError(
            f"no package {package!r} in vene's table of plugin names; packages: {sorted(PROVIDED_NAMES)}."
        )
    return PROVIDED_NAMES[package].get(kind, ())


def installed_version(package: str) -> str | None:
    """The installed version of distribution ``package``, or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _entry_point_names(package: str) -> list[str]:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return []
    return [ep.name for ep in dist.entry_points if ep.group == PROJECT]


def why_missing(package: str, pm: pluggy.PluginManager) -> str:
    """Why a name ``package`` provides is not available through ``pm``, and what to do."""
    version = installed_version(package)
    if version is None:
        return f"the {package} package is not installed. Install it: pip install {package}"
    names = _entry_point_names(package)
    blocked = [n for n in names if pm.is_blocked(n)]
    if blocked:
        return (
            f"the {package} package ({version}) is installed but disabled by VENE_DISABLE_PLUGINS "
            f"(plugin {blocked[0]!r}); remove {blocked[0]!r} from VENE_DISABLE_PLUGINS."
        )
    if any(pm.get_plugin(n) is not None for n in names):
        return (
            f"the installed {package} {version} does not provide it; upgrade: "
            f"pip install --upgrade {package}"
        )
    return (
        f"the {package} package ({version}) is installed, but this plugin manager did not load its "
        f"plugin (it was built with load_entrypoints=False): use get_plugin_manager() or register "
        f"the plugin; where {package} is missing: pip install {package}"
    )


def resolver_hint() -> str:
    """What to do when no resolver knows a model's abstract components."""
    if installed_version("vene-hf") is None:
        return "for Hugging Face models install vene-hf (pip install vene-hf)."
    return (
        "vene-hf is installed, but no loaded resolver knows this architecture (not a Hugging Face "
        "architecture vene-hf supports, or its plugin is disabled by VENE_DISABLE_PLUGINS or not "
        "loaded by this plugin manager)."
    )


def missing_store_hint(pm: pluggy.PluginManager) -> str:
    """What to do when no plugin opens a non-local artifact location."""
    if installed_version("vene-hf") is None:
        return "for Hugging Face Hub repos install vene-hf (pip install vene-hf)."
    if any(pm.get_plugin(n) is not None for n in _entry_point_names("vene-hf")):
        return (
            "vene-hf is installed and loaded but does not take it as a Hub repo id ('user/name'): "
            "check the spelling, or give an existing local directory."
        )
    return "vene-hf is installed but its plugin is not loaded here: " + why_missing("vene-hf", pm)


def type_name(cls: type) -> str:
    """The registered name of a plugin-provided class: its own ``type_name`` or its class name."""
    return cls.__dict__.get("type_name") or cls.__name__


def _disabled_from_env() -> set[str]:
    raw = os.environ.get("VENE_DISABLE_PLUGINS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def get_plugin_manager(
    *, load_entrypoints: bool = True, disabled: Iterable[str] | None = None
) -> pluggy.PluginManager:
    """Build a fresh plugin manager for the ``vene`` project.

    Core's built-ins are registered first under the name ``"core"``. Then, if
    ``load_entrypoints``, every installed ``vene`` entry point is loaded, except those named in
    ``disabled`` (default: the comma-separated ``VENE_DISABLE_PLUGINS`` environment variable).
    """
    from . import _builtin

    pm = VenePluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(_builtin, name="core")
    blocked = _disabled_from_env() if disabled is None else set(disabled)
    if "core" in blocked:
        raise PluginError("the 'core' plugin cannot be disabled; remove it from VENE_DISABLE_PLUGINS.")
    for name in blocked:
        pm.set_blocked(name)
    if load_entrypoints:
        pm.load_entrypoints()
    check_hooks(pm)
    return pm


def check_hooks(pm: pluggy.PluginManager) -> None:
    """Raise :class:`PluginError` when a registered plugin implements a hook vene does not have.

    pluggy would silently never call it (a misspelled ``vene_intervention_type`` for
    ``vene_intervention_types``); this names the plugin, the hook and the nearest real hook.
    """
    try:
        pm.check_pending()
    except pluggy.PluginValidationError:
        specs = [n for n in hookspecs.__all__ if n.startswith("vene_")]
        for name, caller in vars(pm.hook).items():
            if name.startswith("_") or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                plugin = pm.get_name(impl.plugin) or repr(impl.plugin)
                raise PluginError(
                    f"the vene plugin {plugin!r} implements the hook {name!r}, which vene does not "
                    f"have, so it would never be called.{nearest(name, specs, 3)} Hooks: "
                    f"{', '.join(specs)}. Rename it, or disable the plugin with "
                    f"VENE_DISABLE_PLUGINS={plugin}."
                ) from None
        raise


class VenePluginManager(pluggy.PluginManager):
    """pluggy's manager, loading ``vene`` entry points with errors that name the plugin."""

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        self.versions: dict[str, str] = {}

    def load_entrypoints(self) -> None:
        for ep in importlib.metadata.entry_points(group=PROJECT):
            if self.get_plugin(ep.name) is not None or self.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as e:
                dist = getattr(ep.dist, "name", "its distribution")
                raise PluginError(
                    f"the vene plugin {ep.name!r} ({dist}) failed to load: {type(e).__name__}: {e}. "
                    f"Reinstall {dist}, or disable it with VENE_DISABLE_PLUGINS={ep.name}."
                ) from e
            self.register(plugin, name=ep.name)
            if ep.dist is not None:
                self.versions[ep.name] = str(ep.dist.version)


def _plugin_version(pm: pluggy.PluginManager, name: str, plugin: object) -> str:
    versions = getattr(pm, "versions", {})
    if name in versions:
        return versions[name]
    if plugin is _core_module():
        from ._version import __version__

        return __version__
    return "unknown"


def _core_module() -> object:
    from . import _builtin

    return _builtin


@frozen
class PluginInfo:
    name: str
    version: str
    provides: dict[str, list[str]]


def _call(impl: Any, provider: str) -> Any:
    try:
        return impl.function()
    except Exception as e:
        raise PluginError(
            f"plugin {provider!r} failed in {impl.function.__name__}: {type(e).__name__}: {e}. "
            f"Reinstall it, or disable it with VENE_DISABLE_PLUGINS={provider}."
        ) from e


class Registry:
    """Named intervention types, trainers and visualizers collected from a plugin manager.

    Each hook implementation is called on its own so that a name registered twice is reported
    with both providers.
    """

    KINDS = ("intervention_types", "trainers", "visualizers")

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._tables: dict[str, dict[str, type]] = {k: {} for k in self.KINDS}
        self._providers: dict[str, dict[str, str]] = {k: {} for k in self.KINDS}
        self._public: dict[str, Any] = {}
        check_hooks(pm)
        for kind in self.KINDS:
            hook = getattr(pm.hook, f"vene_{kind}")
            for impl in hook.get_hookimpls():
                provider = pm.get_name(impl.plugin) or repr(impl.plugin)
                for cls in _call(impl, provider) or ():
                    self._add(kind, type_name(cls), cls, provider)
        for impl in pm.hook.vene_public_names.get_hookimpls():
            self._public.update(_call(impl, pm.get_name(impl.plugin) or repr(impl.plugin)) or {})

    def _add(self, kind: str, name: str, cls: type, provider: str) -> None:
        table, providers = self._tables[kind], self._providers[kind]
        if name in table and table[name] is not cls:
            raise PluginError(
                f"{kind[:-1].replace('_', ' ')} name {name!r} is registered twice: by plugin "
                f"{providers[name]!r} and by plugin {provider!r}. Disable one with "
                "VENE_DISABLE_PLUGINS=<name>, or rename the class's type_name."
            )
        table[name] = cls
        providers[name] = provider

    def names(self, kind: str) -> list[str]:
        return sorted(self._tables[kind])

    def provider(self, kind: str, name: str) -> str:
        return self._providers[kind][name]

    def get(self, kind: str, name: str) -> type:
        table = self._tables[kind]
        if name in table:
            return table[name]
        package = PLUGIN_PACKAGES.get(name)
        if package:
            raise MissingPluginError(f"{name!r} is provided by the {package} package, but {why_missing(package, self.pm)}")
        what = kind[:-1].replace("_", " ")
        raise MissingPluginError(
            f"no {what} named {name!r} is registered.{nearest(name, table)} Registered: "
            f"{', '.join(sorted(table)) or 'none'}."
        )

    def intervention_type(self, name: str) -> type:
        return self.get("intervention_types", name)

    def trainer(self, name: str) -> type:
        return self.get("trainers", name)

    def visualizer(self, name: str) -> type:
        return self.get("visualizers", name)

    def public(self, name: str) -> Any:
        if name in self._public:
            return self._public[name]
        if name in self._tables["intervention_types"]:
            return self._tables["intervention_types"][name]
        raise KeyError(name)

    def plugins(self) -> list[PluginInfo]:
        """What each registered plugin provides, for ``vene plugins``."""
        out = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda x: x[0]):
            if plugin is None:
                continue
            provides: dict[str, list[str]] = {}
            for kind in self.KINDS:
                got = [n for n, p in self._providers[kind].items() if p == name]
                if got:
                    provides[kind] = sorted(got)
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or ())
            if "vene_public_names" in hooks:
                names = getattr(plugin, "vene_public_names")()  # noqa: B009 -- plugins are untyped objects
                provides["public names"] = sorted(names or ())
            if "vene_site_families" in hooks:
                families = getattr(plugin, "vene_site_families")()  # noqa: B009 -- plugins are untyped objects
                provides["site families"] = sorted(families or ())
            elif "vene_resolve_site" in hooks:
                provides["site resolvers"] = ["vene_resolve_site"]
            if "vene_artifact_store" in hooks:
                provides["artifact stores"] = ["vene_artifact_store"]
            if "vene_cli_commands" in hooks:
                commands = getattr(plugin, "vene_cli_commands")()  # noqa: B009 -- plugins are untyped objects
                provides["cli commands"] = [c.name for c in commands]
            out.append(PluginInfo(name=name, version=_plugin_version(self.pm, name, plugin), provides=provides))
        return out


@functools.cache
def default_registry() -> Registry:
    """The registry of the default plugin manager, built on first use and cached."""
    return Registry(get_plugin_manager())


def reset_default_registry() -> None:
    """Forget the cached default registry (after installing or disabling plugins)."""
    default_registry.cache_clear()
