"""The examples in README.md and docs/usage.md run."""

from __future__ import annotations

import pathlib
import re

import pytest

import vene as pv

ROOT = pathlib.Path(__file__).resolve().parents[3]


def blocks(path: pathlib.Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("doc", ["README.md", "docs/usage.md"])
def test_python_examples_run(doc):
    found = blocks(ROOT / doc)
    assert found, f"{doc} has no python examples"
    namespace: dict = {}
    has_hf = pv.get_plugin_manager().get_plugin("hf") is not None
    for code in found:
        if "transformers" in code and not has_hf:
            continue  # needs the vene-hf plugin, which this environment does not have
        exec(compile(code, f"{doc} example", "exec"), namespace)  # noqa: S102 -- the docs' own examples
