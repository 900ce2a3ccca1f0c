"""Sessions for the monorepo: tests per package, the vene-hf family matrix, lint, typecheck.

The package list is read from packages/*/pyproject.toml. Sessions reuse an already-installed
torch (virtualenvs see the system site-packages) and otherwise install the CPU build
``torch==2.13.0`` first, so that no session pulls a multi-GB CUDA build.

    nox                      # lint + tests of every package (what CI runs)
    nox -s "tests(package='vene-core')"
    nox -s hf_family         # vene-hf's per-family tests, one session per family
    nox -s typecheck
"""

from __future__ import annotations

import pathlib
import tomllib

import nox

ROOT = pathlib.Path(__file__).parent
PACKAGES = sorted(
    tomllib.loads(p.read_text())["project"]["name"] for p in ROOT.glob("packages/*/pyproject.toml")
)
HF_FAMILIES = [
    "gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "gemma", "gemma2",
    "gemma3", "qwen2", "qwen3", "olmo", "olmo2", "phi3", "bert", "roberta", "t5", "esm",
]
TORCH = "torch==2.13.0"

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session, *packages: str) -> None:
    session.install(TORCH)  # a no-op when the system's torch already satisfies it
    args = []
    for name in ("vene-core", *packages):
        args += ["-e", str(ROOT / "packages" / name)]
    session.install(*args, "pytest")


@nox.session(venv_params=["--system-site-packages"])
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """The tests of one package, with vene-core and that package installed."""
    _install(session, *(p for p in [package] if p != "vene-core"))
    session.run("python", "-m", "pytest", str(ROOT / "packages" / package / "tests"), "-q", *session.posargs)


@nox.session(venv_params=["--system-site-packages"])
@nox.parametrize("family", HF_FAMILIES)
def hf_family(session: nox.Session, family: str) -> None:
    """vene-hf's architecture tests for one model family."""
    _install(session, "vene-hf")
    session.run(
        "python", "-m", "pytest", str(ROOT / "packages" / "vene-hf" / "tests"), "-q", *session.posargs,
        env={"VENE_HF_FAMILY": family},
    )


@nox.session(venv_params=["--system-site-packages"])
def lint(session: nox.Session) -> None:
    """ruff over every package, the examples, the benchmarks and this file."""
    session.install("ruff")
    session.run("ruff", "check", "packages", "examples", "benchmarks", "noxfile.py")


@nox.session(venv_params=["--system-site-packages"])
def typecheck(session: nox.Session) -> None:
    """mypy over vene-core's sources (the contract the plugins build on)."""
    _install(session)
    session.install("mypy")
    session.run("mypy", str(ROOT / "packages" / "vene-core" / "src" / "vene"))
