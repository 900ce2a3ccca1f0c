"""The python examples in vene-train's README run."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 4, "the README lost its examples"
    monkeypatch.chdir(tmp_path)  # the examples save artifacts to the working directory
    for i, code in enumerate(blocks):
        exec(compile(code, f"{README.name} example {i}", "exec"), {"__name__": "readme"})  # noqa: S102 -- the README's own examples
