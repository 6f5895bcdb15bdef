"""Every task a person runs on nsdk: ``nox -l`` lists them, ``nox`` runs the default set.

Sessions install what they need from ``pyproject.toml``'s dependency groups, so a fresh machine
with only ``pip install nox`` can run any of them. Tests run against the built wheel, not the
source tree.
"""

from __future__ import annotations

import json
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHON = "3.11"

nox.options.error_on_external_run = True
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["check_generated", "lint", "typing", "api_diff", "tests"]


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


def _api_diff_node_modules(session: nox.Session) -> None:
    """Install tools/api_diff's OpenAPI differ (api-smart-diff) from its npm lockfile, once."""
    tool = ROOT / "tools" / "api_diff"

    def versions(lockfile: Path) -> dict[str, str]:
        packages = json.loads(lockfile.read_text(encoding="utf-8"))["packages"]
        return {name: p["version"] for name, p in packages.items() if name}

    installed = tool / "node_modules" / ".package-lock.json"  # npm's record of what it installed
    if installed.exists() and versions(installed) == versions(tool / "package-lock.json"):
        return
    npm = ["npm", "ci", "--prefix", str(tool), "--ignore-scripts", "--no-audit", "--no-fund"]
    session.run(*npm, external=True, silent=True)


def _docs_mermaid(session: nox.Session) -> None:
    """Fetch the docs site's mermaid from the npm registry into .cache/mermaid/, once.

    ``python -m generator.mermaid``: ``npm pack`` of the pinned version, checked against its
    pinned integrity; the docs build only reads that cache (see mkdocs.yml).
    """
    session.run("python", "-m", "generator.mermaid", silent=True)


@nox.session(python=PYTHON)
def api_diff(session: nox.Session) -> None:
    """What a change does to users: spec and Python API against the last release; see CHANGELOG.md.

    Compares openapi.yaml and the public API of nsdk and nsdk_api at a base revision (``-- --base
    REF``; default: the latest tag v*, else the merge base with main, else HEAD) with the working
    tree; fails when a breaking change lacks its version bump or changelog entry.
    """
    session.install(*_group("api_diff"))
    _api_diff_node_modules(session)
    session.run("python", "-m", "tools.api_diff", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite against the installed wheel and the reference server over loopback."""
    session.install(*_group("test"))
    session.install("./server")
    _install_wheel(session)
    _api_diff_node_modules(session)  # tests/api_diff runs tools/api_diff
    _docs_mermaid(session)  # tests/docs and tests/browser build the site
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
def mutation(session: nox.Session) -> None:
    """Mutation testing (mutmut) of the decision cores and the store code; not in the default run.

    Two groups: the overlay's decision cores and coordination code (tests/overlay, then
    tests/reliability), and the shared-session stores (tests/sharing and tests/redis, then their
    multi-process tests). Prints the score per module and every surviving mutant (file, line,
    change); see mutation/run.py. By default incremental (verdicts kept in .mutation/ for
    unchanged functions) and bounded to 240 s of testing: what is left is reported as not
    tested, and the next run goes on from there. ``nox -s mutation -- --full`` is the cold run
    of every mutant (about 18 minutes on 2 cores); other arguments: ``-- _transport
    --fast-only --budget 600``, ``-- --group shared``. Mutants run as the calling user and a
    guard puts back the modes of /, the home and temp directories if one changes them (see
    GUARD_PLUGIN). No nsdk wheel here: the tests must import mutmut's mutated copy.
    """
    session.install(*_group("mutation"))
    session.install("./server")
    session.install(*PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"].get("optional-dependencies", {}).values():
        session.install(*extra)
    session.run("python", "mutation/run.py", *session.posargs, env={"NSDK_REPO_ROOT": str(ROOT)})


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
    build (generator/mkdocs_hook.py); mermaid comes from the npm registry, fetched and checked
    once before it (generator/mermaid.py). Arguments go to ``mkdocs build``, e.g.
    ``-- -d /tmp/site``.
    """
    session.install(*_group("docs"))
    _install_wheel(session)
    _docs_mermaid(session)
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python=PYTHON)
def explore(session: nox.Session) -> None:
    """Try the API from the docs: build the site, start the reference server, serve the site.

    The reference server listens on http://127.0.0.1:8000 and lets pages from the site's origins
    (http://127.0.0.1:8001 and http://localhost:8001, exactly: ``--cors-origin``) call it; the
    site is served on http://127.0.0.1:8001. Open /api-explorer/ there: login, Authorize, me.
    Ctrl-C stops both. Other ports: ``nox -s explore -- --api-port 9000 --site-port 9001``.
    """
    import argparse
    import subprocess

    parser = argparse.ArgumentParser(prog="nox -s explore --")
    parser.add_argument("--api-port", type=int, default=8000, help="the reference server's port")
    parser.add_argument("--site-port", type=int, default=8001, help="the docs site's port")
    args = parser.parse_args(session.posargs)
    session.install(*_group("docs"))
    session.install("./server")
    _install_wheel(session)
    _docs_mermaid(session)
    site = Path(session.create_tmp()) / "site"
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", str(site), env={"NO_MKDOCS_2_WARNING": "1"}
    )
    origins = [f"http://127.0.0.1:{args.site_port}", f"http://localhost:{args.site_port}"]
    python = Path(session.virtualenv.location) / "bin" / "python"
    command = [str(python), "-m", "nsdk_server", "--port", str(args.api_port), "--access-log"]
    command += [arg for origin in origins for arg in ("--cors-origin", origin)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # logs: stderr
    try:
        assert server.stdout is not None
        api = server.stdout.readline().strip()  # the URL, once it listens; "" if it failed
        if not api:
            session.error(f"the reference server did not start (exit {server.wait()})")
        session.log(f"reference server: {api} (demo user: user@example.com / demo-password)")
        session.log(f"API Explorer: {origins[0]}/api-explorer/  (Ctrl-C stops both)")
        session.run(
            "python", "-m", "http.server", str(args.site_port),
            "--bind", "127.0.0.1", "--directory", str(site),
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(10)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: overhead, import time, refresh herds, throughput, generation, memory."""
    session.install(*_group("bench"))
    session.install("./server")
    _install_wheel(session)
    session.run("python", "bench/run.py", *session.posargs)
