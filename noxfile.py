"""Every task a person runs on nsdk: ``nox -l`` lists them, ``nox`` runs the default set.

Sessions install what they need from ``pyproject.toml``'s dependency groups, so a fresh machine
with only ``pip install nox`` can run any of them. Tests run against the built wheel, not the
source tree.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = "3.11"

nox.options.error_on_external_run = True
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["check_generated", "lint", "typing", "tests"]


def _group(name: str) -> list[str]:
    return nox.project.dependency_groups(PYPROJECT, name)


def _install_wheel(session: nox.Session) -> None:
    """Build the nsdk wheel into the session's tmp dir and install it (no editable source)."""
    out = Path(session.create_tmp()) / "dist"
    session.install("build==1.3.0")
    session.run("python", "-m", "build", "--wheel", "--outdir", str(out), silent=True)
    wheels = sorted(out.glob("nsdk-*.whl"), key=lambda p: p.stat().st_mtime)
    session.install("--force-reinstall", "--no-deps", str(wheels[-1]))
    session.install(*PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"].get("optional-dependencies", {}).values():
        session.install(*extra)  # every extra: the tests and docs exercise them all


@nox.session(python=PYTHON)
def generate(session: nox.Session) -> None:
    """Regenerate generated/nsdk_api from openapi.yaml through templates/."""
    session.install(*_group("generate"))
    session.run("python", "-m", "generator", *session.posargs)


@nox.session(python=PYTHON)
def check_generated(session: nox.Session) -> None:
    """Drift check: regenerate into a temp dir and fail with a diff if generated/ is stale."""
    session.install(*_group("generate"))
    session.run("python", "-m", "generator", "--check")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff lint and format check over hand-written code."""
    session.install(*_group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """Mypy and pyright, both strict, over the overlay, the generated package and tests/typing."""
    session.install(*_group("typing"))
    _install_wheel(session)
    session.run("mypy", "--strict", "overlay/nsdk", "generated/nsdk_api", "tests/typing")
    # pyright strict too (pyrightconfig.json), against this session's environment.
    python = str(Path(session.virtualenv.location) / "bin" / "python")
    session.run("pyright", "--pythonpath", python)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite against the installed wheel and the reference server over loopback."""
    session.install(*_group("test"))
    session.install("./server")
    _install_wheel(session)
    # --import-mode=importlib keeps the repo root off sys.path; nsdk and nsdk_api come from the
    # wheel (their sources live under overlay/ and generated/, not importable from the root).
    session.run(
        "python",
        "-m",
        "pytest",
        "--import-mode=importlib",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"NSDK_REPO_ROOT": str(ROOT)},
    )


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job: regenerate, start the reference server, run the guide's flow end to end."""
    session.install(*_group("generate"))
    session.run("python", "-m", "generator")
    session.install("./server")
    _install_wheel(session)
    session.run("python", "examples/demo.py", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ (mkdocs --strict): docs/, docstrings, openapi.yaml.

    The HTTP reference is rendered from openapi.yaml by the generator's own Jinja pass during the
    build (generator/mkdocs_hook.py). Arguments go to ``mkdocs build``, e.g. ``-- -d /tmp/site``.
    """
    session.install(*_group("docs"))
    _install_wheel(session)
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: overhead, import time, refresh herds, throughput, generation, memory."""
    session.install(*_group("bench"))
    session.install("./server")
    _install_wheel(session)
    session.run("python", "bench/run.py", *session.posargs)
