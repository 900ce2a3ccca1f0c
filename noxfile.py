"""Sessions for the monorepo: tests per package, the vene-hf family matrix, lint, typecheck.

The package list is read from packages/*/pyproject.toml. Each session is its own virtualenv
(so vene-core's tests run with no plugin installed) and installs the CPU build ``torch==2.13.0``
first, so that nothing pulls a multi-GB CUDA build.

    nox                      # lint, typecheck and the tests of every package (what CI runs)
    nox -s "tests(package='vene-core')"
    nox -s hf_family         # vene-hf's per-family tests, one session per family
    nox -s typecheck
    nox -s bench             # benchmarks/patching.py against TransformerLens and pyvene (not by default)
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

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


# local packages a package's tests use besides itself (vene-viz draws vene-train's masks)
TEST_COMPANIONS = {"vene-viz": ["vene-train"]}


def _install(session: nox.Session, *packages: str) -> None:
    session.install(TORCH)  # first: a later bare torch requirement is then already satisfied
    args = ["-e", f"{ROOT / 'packages' / 'vene-core'}[test]"]
    for name in packages:
        args += ["-e", f"{ROOT / 'packages' / name}[test]"]
        args += [a for c in TEST_COMPANIONS.get(name, []) for a in ("-e", str(ROOT / "packages" / c))]
    session.install(*args)


@nox.session
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """The tests of one package, with vene-core and that package installed."""
    _install(session, *(p for p in [package] if p != "vene-core"))
    session.run("python", "-m", "pytest", str(ROOT / "packages" / package / "tests"), "-q", *session.posargs)


@nox.session
@nox.parametrize("family", HF_FAMILIES)
def hf_family(session: nox.Session, family: str) -> None:
    """vene-hf's architecture tests for one model family."""
    _install(session, "vene-hf")
    session.run(
        "python", "-m", "pytest", str(ROOT / "packages" / "vene-hf" / "tests"), "-q", *session.posargs,
        env={"VENE_HF_FAMILY": family},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over every package, the examples, the benchmarks and this file."""
    session.install("ruff")
    session.run("ruff", "check", "packages", "examples", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over vene-core's sources (the contract the plugins build on)."""
    _install(session)
    session.install("mypy")
    session.run("mypy", str(ROOT / "packages" / "vene-core" / "src" / "vene"))


@nox.session(venv_backend="venv")
def bench(session: nox.Session) -> None:
    """benchmarks/patching.py against TransformerLens and a pyvene 0.1.8 loop (not in the default run).

    transformers < 5 because pyvene 0.1.8 needs it; vene supports 4.x and 5.x alike.
    """
    session.install(TORCH)
    session.install("transformers>=4.45,<5", "pyvene==0.1.8", "transformer-lens>=2.10,<3", "pyarrow<20", "pandas", "tqdm")  # pyarrow 20+ needs numpy 2, which transformer-lens 2.x caps
    session.install("-e", str(ROOT / "packages" / "vene-core"), "-e", str(ROOT / "packages" / "vene-hf"))
    session.run("python", str(ROOT / "benchmarks" / "patching.py"), *session.posargs)
