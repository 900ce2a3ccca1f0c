"""The ``vene`` command as a user meets it: fast help, every version, quiet closed pipes, logging."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import vene
from vene.cli import main


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_help_imports_no_torch():
    # what makes `vene --help` answer at once: building the parser (which registers every
    # installed plugin and asks each for its commands) must not import torch or numpy
    res = _python(
        "import sys\n"
        "from vene.cli import build_parser\n"
        "parser, commands = build_parser()\n"
        "parser.format_help()\n"
        "print(sorted(m for m in ('torch', 'numpy', 'transformers', 'matplotlib') if m in sys.modules))\n"
        "print(sorted(commands))"
    )
    assert res.returncode == 0, res.stderr
    heavy, commands = res.stdout.strip().splitlines()
    assert heavy == "[]", f"vene --help imported {heavy}"
    assert "plugins" in commands and "quickstart" in commands


def test_import_vene_is_lazy_but_complete():
    res = _python(
        "import sys, vene\n"
        "assert 'torch' not in sys.modules\n"
        "from vene import *\n"
        "missing = [n for n in vene.__all__ if not hasattr(vene, n)]\n"
        "print(missing, 'torch' in sys.modules, type(vene.IntervenableModel).__name__)"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["[]", "True", "type"]
    assert set(vene.__all__) <= set(dir(vene))


def test_version_lists_every_installed_vene_package(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"vene-core {vene.__version__}" in lines
    # each distribution that registers plugins in the ``vene`` entry-point group is listed
    for dist in importlib.metadata.distributions():
        if any(ep.group == "vene" for ep in dist.entry_points):
            assert f"{dist.metadata['Name']} {dist.version}" in lines


def test_closed_pipe_ends_quietly():
    # the reader closes the pipe before vene writes (``vene plugins --json | head -0``)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vene.cli", "plugins", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err, err.decode()
    assert b"BrokenPipeError" not in err
    assert proc.returncode == 141


def test_plugins_table_and_json(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "plugin" in out and "core" in out and "VanillaIntervention" in out
    assert main(["plugins", "--json"]) == 0
    infos = {i["name"]: i for i in json.loads(capsys.readouterr().out)}
    # core's resolver says what it resolves
    assert "mlp" in infos["core"]["provides"]["site families"]
    assert "dotted module paths" in infos["core"]["provides"]["site families"]


def test_verbose_flag_turns_on_vene_logging():
    res = subprocess.run(
        [sys.executable, "-c",
         "import logging, sys\n"
         "from vene.cli import main\n"
         "main(['-vv', 'plugins', '--json'])\n"
         "print(logging.getLogger('vene').getEffectiveLevel())"],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == str(10)  # DEBUG


def test_quickstart_prints_its_report(capsys):
    assert main(["quickstart"]) == 0
    out = capsys.readouterr().out
    assert "patched output equals the source's: True" in out
