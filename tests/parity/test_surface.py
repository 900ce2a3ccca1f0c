"""pyvene 0.1.8's public surface, as the oracle recorded it, is present in vene.

The oracle interpreter writes ``$VENE_PARITY_OUT/pyvene_surface.json`` with ``surface.py``; this
test walks every module path, name, class member and parameter in it, looks the same thing up in
vene (``pyvene.x.y`` read as ``vene.x.y``), writes ``surface_report.json`` beside it, and fails on
anything vene lacks that docs/design.md does not list as a departure.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pathlib
from typing import Any

import pytest
from _departures import departed, departures

OUT = os.environ.get("VENE_PARITY_OUT")
pytestmark = pytest.mark.skipif(OUT is None, reason="run by `nox -s parity`, which sets VENE_PARITY_OUT")


def _params(obj: Any) -> tuple[set[str], bool, bool] | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    ps = sig.parameters.values()
    return (
        {p.name for p in ps},
        any(p.kind is p.VAR_POSITIONAL for p in ps),
        any(p.kind is p.VAR_KEYWORD for p in ps),
    )


def _check_params(item: str, want: list[str] | None, obj: Any, missing: list[str], covered: list[str]) -> None:
    if not want:
        return
    have = _params(obj)
    for p in want:
        key = f"{item}({p.lstrip('*')})"
        if have is None:
            ok = False
        elif p.startswith("**"):
            ok = have[2]
        elif p.startswith("*"):
            ok = have[1]
        else:
            ok = p in have[0]
        (covered if ok else missing).append(key)


def compare(surface: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(covered items, missing items) for every module, name, member and parameter."""
    covered: list[str] = []
    missing: list[str] = []
    for path, names in sorted(surface.items()):
        if names is None:
            continue
        vpath = "vene" + path[len("pyvene"):]
        try:
            mod = importlib.import_module(vpath)
        except ImportError:
            missing.append(path)
            missing += [f"{path}.{n}" for n in names]
            continue
        covered.append(path)
        for name, entry in sorted(names.items()):
            item = f"{path}.{name}"
            try:
                obj = getattr(mod, name)
            except (AttributeError, ImportError):
                missing.append(item)
                continue
            covered.append(item)
            _check_params(item, entry.get("params"), obj, missing, covered)
            for member, m in sorted(entry.get("members", {}).items()):
                if member == "__init__":
                    continue  # its parameters are the class's, checked above
                mitem = f"{item}.{member}"
                if not hasattr(obj, member):
                    missing.append(mitem)
                    continue
                covered.append(mitem)
                if m["kind"] == "method":
                    _check_params(mitem, m.get("params"), getattr(obj, member), missing, covered)
    return covered, missing


def test_pyvene_surface_is_present() -> None:
    assert OUT is not None
    src = pathlib.Path(OUT) / "pyvene_surface.json"
    assert src.exists(), f"{src} missing: the oracle step of `nox -s parity` writes it"
    surface = json.loads(src.read_text())
    covered, missing = compare(surface)
    table = departures()
    listed = {m: departed(m, table) for m in missing}
    unlisted = sorted(m for m, p in listed.items() if p is None)
    used = {p for p in listed.values() if p}
    total = len(covered) + len(missing)
    report = {
        "covered": len(covered),
        "departures": len(missing) - len(unlisted),
        "missing": len(unlisted),
        "total": total,
        "missing_items": unlisted,
        "departed_items": {m: p for m, p in sorted(listed.items()) if p},
        "unused_departures": sorted(set(table) - used),
    }
    (pathlib.Path(OUT) / "surface_report.json").write_text(json.dumps(report, indent=1))
    print(f"pyvene surface: {len(covered)}/{total} covered, {report['departures']} listed departures, "
          f"{len(unlisted)} missing")
    assert not unlisted, f"{len(unlisted)} pyvene names vene lacks (not in docs/design.md's departures): " + ", ".join(unlisted)
    assert not report["unused_departures"], f"departures that match nothing: {report['unused_departures']}"
