"""Enumerate a pyvene-compatible module tree's public surface as JSON.

Run under the oracle interpreter (``python surface.py pyvene out.json``) it records pyvene's
surface; the parity test calls :func:`surface` on vene's tree with the same rules, so both sides
are read by one piece of code. For every module path user code imports it records the public
names defined in the package (classes, functions, plain data such as mapping tables), each
function's parameters, and each class's public methods (with parameters) and attributes.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys
import types
from typing import Any

# module paths (relative to the package root) that pyvene users import
MODULES = [
    "",
    "models",
    "models.interventions",
    "models.intervenable_base",
    "models.configuration_intervenable_model",
    "models.basic_utils",
    "models.constants",
    "models.intervention_utils",
    "models.modeling_utils",
    "models.intervenable_modelcard",
    "models.layers",
    "data_generators",
    "data_generators.causal_model",
    "analyses",
    "analyses.visualization",
]
FAMILY_PACKAGES = "models"  # every subpackage of pyvene.models is a family: all its modules


def _params(obj: Any) -> list[str] | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    out = []
    for p in sig.parameters.values():
        if p.name in ("self", "cls"):
            continue
        if p.kind is p.VAR_POSITIONAL:
            out.append("*" + p.name)
        elif p.kind is p.VAR_KEYWORD:
            out.append("**" + p.name)
        else:
            out.append(p.name)
    return out


def _own(obj: Any, root: str) -> bool:
    mod = getattr(obj, "__module__", None) or ""
    return mod == root or mod.startswith(root + ".")


def _class(cls: type) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name in dir(cls):
        if name.startswith("_") and name != "__init__":
            continue
        try:
            raw = inspect.getattr_static(cls, name)
        except AttributeError:
            continue
        # only what the package's own classes define (not torch's, transformers' or object's)
        root = cls.__module__.split(".")[0]
        if name != "__init__" and not any(
            name in vars(b) for b in cls.__mro__ if b.__module__.split(".")[0] == root
        ):
            continue
        if isinstance(raw, (staticmethod, classmethod)):
            members[name] = {"kind": "method", "params": _params(getattr(cls, name))}
        elif inspect.isfunction(raw):
            members[name] = {"kind": "method", "params": _params(raw)}
        elif isinstance(raw, property):
            members[name] = {"kind": "attribute"}
        elif not callable(raw):
            members[name] = {"kind": "attribute"}
    fields = getattr(cls, "__dataclass_fields__", None) or getattr(cls, "__attrs_attrs__", None)
    if fields:
        names = fields.keys() if isinstance(fields, dict) else [f.name for f in fields]
        for n in names:
            members.setdefault(n, {"kind": "attribute"})
    return {"kind": "class", "params": _params(cls), "members": members}


def _entry(obj: Any) -> dict[str, Any]:
    if inspect.isclass(obj):
        return _class(obj)
    if callable(obj) and not isinstance(obj, types.ModuleType):
        return {"kind": "function", "params": _params(obj)}
    return {"kind": "value"}


def _assigned(mod: types.ModuleType) -> set[str]:
    """Names a module's own source assigns at top level (where a data value is defined)."""
    import ast

    try:
        tree = ast.parse(inspect.getsource(mod))
    except (OSError, TypeError):
        return set()
    out: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for t in targets:
            if isinstance(t, ast.Name):
                out.add(t.id)
    return out


def module_surface(mod: types.ModuleType, root: str) -> dict[str, Any]:
    """The public names a module defines: classes and functions whose home it is, module-level data
    its source assigns (one-letter loop leftovers skipped), and its public subpackages."""
    names: dict[str, Any] = {}
    assigned = _assigned(mod)
    candidates = getattr(mod, "__all__", None) or [n for n in dir(mod) if not n.startswith("_")]
    for name in candidates:
        obj = getattr(mod, name, None)
        if isinstance(obj, types.ModuleType):
            if obj.__name__.startswith(root + "."):
                names[name] = {"kind": "module"}
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj):
            if getattr(obj, "__module__", None) != mod.__name__:
                continue  # defined elsewhere: checked at its home
        elif callable(obj) or type(obj).__module__ not in ("builtins",):
            continue  # typing constructs, foreign objects
        elif name not in assigned or len(name) == 1:
            continue
        names[name] = _entry(obj)
    return names


def top_surface(mod: types.ModuleType, root: str) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for name in [n for n in dir(mod) if not n.startswith("_")]:
        obj = getattr(mod, name)
        if isinstance(obj, types.ModuleType):
            if obj.__name__.startswith(root + ".") and obj.__name__.count(".") == 1:
                names[name] = {"kind": "module"}
        elif inspect.isclass(obj) or inspect.isfunction(obj):
            if _own(obj, root):
                names[name] = _entry(obj)
        elif isinstance(obj, dict):
            names[name] = {"kind": "value"}
    return names


def module_paths(root: str) -> list[str]:
    pkg = importlib.import_module(root)
    paths = [f"{root}.{m}" if m else root for m in MODULES]
    fam_pkg = importlib.import_module(f"{root}.{FAMILY_PACKAGES}")
    for info in pkgutil.iter_modules(fam_pkg.__path__):
        if info.ispkg:
            sub = importlib.import_module(f"{root}.{FAMILY_PACKAGES}.{info.name}")
            paths.append(sub.__name__)
            paths += [f"{sub.__name__}.{m.name}" for m in pkgutil.iter_modules(sub.__path__)]
    del pkg
    return sorted(set(paths))


def surface(root: str, paths: list[str] | None = None) -> dict[str, Any]:
    """``{module path (root renamed 'pyvene'): {name: entry}}``; a module that is missing is None.

    The package root is read differently: every public name it exposes counts (that is the
    path ``import pyvene as pv`` code reads), wherever it is defined."""
    out: dict[str, Any] = {}
    for path in paths if paths is not None else module_paths(root):
        key = "pyvene" + path[len(root):] if path.startswith(root) else path
        try:
            mod = importlib.import_module(path)
        except ImportError:
            out[key] = None
            continue
        out[key] = module_surface(mod, root) if path != root else top_surface(mod, root)
    return out


if __name__ == "__main__":
    root, dest = sys.argv[1], sys.argv[2]
    data = surface(root)
    with open(dest, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    n = sum(len(v) for v in data.values() if v)
    print(f"{len(data)} modules, {n} names -> {dest}")
