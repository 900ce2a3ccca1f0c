"""The layer contract (.importlinter, run by ``nox -s lint``) holds, and catches a violation.

Each check copies the four packages' sources into a temporary tree, optionally adds a forbidden
import, and runs ``lint-imports`` on that tree with the repository's contract file.
"""

from __future__ import annotations

import configparser
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
PACKAGES = {
    "vene-core": "vene", "vene-hf": "vene_hf", "vene-train": "vene_train", "vene-viz": "vene_viz", "vene-ray": "vene_ray",
}


def _tree(tmp: pathlib.Path) -> list[pathlib.Path]:
    roots = []
    for dist, name in PACKAGES.items():
        src = tmp / dist
        shutil.copytree(ROOT / "packages" / dist / "src" / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
        roots.append(src)
    return roots


def _lint(roots: list[pathlib.Path], cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, roots))}
    exe = shutil.which("lint-imports") or pytest.fail("lint-imports is not installed (import-linter)")
    return subprocess.run(
        [exe, "--no-cache", str(ROOT / ".importlinter")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


def _add_import(path: pathlib.Path, line: str) -> None:
    text = path.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    path.write_text(head + sep + line + "\n" + rest)


def test_contract_holds_on_the_real_tree(tmp_path):
    done = _lint(_tree(tmp_path), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("file", "line", "contract"),
    [
        ("vene-hf/vene_hf/plugin.py", "import vene._model", "plugins import only vene's public modules"),
        ("vene-core/vene/plugins.py", "import vene_hf", "vene-core imports no plugin package"),
        ("vene-core/vene/_engine.py", "from . import _plan",
         "inside vene-core the engine does not import the model layer"),
    ],
)
def test_contract_catches_a_violation(tmp_path, file, line, contract):
    roots = _tree(tmp_path)
    _add_import(tmp_path / file, line)
    done = _lint(roots, tmp_path)
    assert done.returncode != 0, done.stdout
    assert f"{contract} BROKEN" in done.stdout, done.stdout


def test_the_contract_lists_every_private_module():
    """The plugin contract names vene's private modules one by one (import-linter's wildcards
    match whole names only); a new ``vene/_x.py`` must be added to it."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    listed = set(cfg["importlinter:contract:plugins-use-public-vene"]["forbidden_modules"].split())
    src = ROOT / "packages" / "vene-core" / "src" / "vene"
    private = {f"vene.{p.stem}" for p in src.iterdir() if p.name.startswith("_") and not p.name.startswith("__")}
    assert private == listed

