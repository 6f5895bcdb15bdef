"""Generate generated/nsdk_api from openapi.yaml, or check that it is up to date.

Steps, all into a fresh temporary directory so nothing stale or cached survives:

1. check the spec's nsdk conventions (``_spec.py``);
2. run the pinned openapi-python-client with ``templates/`` and ``--meta none``;
3. render our own Jinja pass over the spec: ``_operations.py`` (per-operation facts) and
   ``_commands.py`` (the ``nsdk api`` commands: the generator's ``_commands.py``);
4. add ``py.typed`` and format with the pinned ruff (``--no-cache``: no ``.ruff_cache`` left);
5. replace ``generated/nsdk_api`` with the result, or (``--check``) diff against it.

``--docs-dest DIR`` also renders the spec-driven docs pages (the HTTP reference, ``_docs.py``)
into DIR; ``--docs`` renders only those (into ``build/docs`` unless ``--docs-dest`` says where).
"""

from __future__ import annotations

import difflib
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import _commands, _docs, _spec

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi.yaml"
TEMPLATES = ROOT / "templates"
CONFIG = Path(__file__).resolve().parent / "config.yaml"
RUFF_CONFIG = Path(__file__).resolve().parent / "ruff.toml"
PACKAGE = "nsdk_api"
DEST = ROOT / "generated" / PACKAGE
DOCS_DEST = ROOT / "build" / "docs"


def _run(cmd: list[str], cwd: Path) -> None:
    # A fixed environment keeps the output independent of the caller's locale and hash seed.
    env = {**os.environ, "PYTHONHASHSEED": "0", "LC_ALL": "C.UTF-8"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"generator: command failed: {' '.join(cmd)}")


def render_own(spec: dict[str, Any], ops: list[_spec.OperationFacts], out: Path) -> None:
    """Render the spec-driven files that upstream templates cannot produce."""
    env = _docs.environment()  # one Jinja environment for our own pass (code and docs)
    text = env.get_template("_operations.py.jinja").render(
        operations=ops, request_id_header=_spec.request_id_header(spec)
    )
    (out / "_operations.py").write_text(text, encoding="utf-8")
    # The `nsdk api` command tree (nsdk.cli): the same operations, with their options.
    env.filters["pyrepr"] = repr  # a Python literal for any string the spec holds
    text = env.get_template("_commands.py.jinja").render(commands=_commands.commands(spec, ops))
    (out / "_commands.py").write_text(text, encoding="utf-8")


def generate_into(target: Path, spec_path: Path = SPEC, templates: Path = TEMPLATES) -> Path:
    """Generate the package into ``target/nsdk_api`` and return that path."""
    spec = _spec.load(spec_path)
    ops = _spec.operations(spec)  # first: a convention break fails with a readable message
    pkg = target / PACKAGE
    _run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(spec_path),
            "--meta",
            "none",
            "--config",
            str(CONFIG),
            "--custom-template-path",
            str(templates),
            "--output-path",
            str(pkg),
            "--overwrite",
            "--fail-on-warning",
        ],
        cwd=target,
    )
    render_own(spec, ops, pkg)
    (pkg / "py.typed").write_text("", encoding="utf-8")
    ruff = [sys.executable, "-m", "ruff"]
    common = ["--no-cache", "--config", str(RUFF_CONFIG)]
    _run([*ruff, "check", "--fix-only", "--quiet", *common, str(pkg)], cwd=target)
    _run([*ruff, "format", "--quiet", *common, str(pkg)], cwd=target)
    for junk in pkg.rglob("__pycache__"):
        shutil.rmtree(junk)
    return pkg


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def diff(expected: Path, actual: Path) -> str:
    """A unified diff of two package trees ('' when identical)."""
    out: list[str] = []
    exp, act = _files(expected), _files(actual)
    for name in sorted(exp | act):
        a, b = expected / name, actual / name
        if name not in act:
            out.append(f"only in freshly generated output: {name}\n")
        elif name not in exp:
            out.append(f"stale file not produced by the generator: {name}\n")
        elif not filecmp.cmp(a, b, shallow=False):
            out.extend(
                difflib.unified_diff(
                    b.read_text(encoding="utf-8").splitlines(keepends=True),
                    a.read_text(encoding="utf-8").splitlines(keepends=True),
                    fromfile=f"generated/{PACKAGE}/{name} (committed)",
                    tofile=f"generated/{PACKAGE}/{name} (from openapi.yaml)",
                )
            )
    return "".join(out)


def _render_docs(spec: Path, dest: Path) -> None:
    pages = _docs.render_docs(_spec.load(spec), dest)
    print(f"rendered {', '.join(str(p) for p in pages)} from {spec.name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m generator [--check] [--spec PATH] [--dest DIR] [--docs...]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m generator", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail with a diff if dest is stale")
    parser.add_argument("--spec", type=Path, default=SPEC, help="the OpenAPI document")
    parser.add_argument("--dest", type=Path, default=DEST, help="the package directory")
    parser.add_argument(
        "--docs-dest", type=Path, help="also render the spec-driven docs pages into this directory"
    )
    parser.add_argument(
        "--docs", action="store_true", help="render only the docs pages (default dir: build/docs)"
    )
    args = parser.parse_args(argv)
    # The upstream generator runs in a temp dir: relative paths must not depend on that.
    args.spec, args.dest = args.spec.resolve(), args.dest.resolve()
    if args.docs and args.check:
        parser.error("--docs and --check do not combine (the docs pages are never committed)")
    try:
        if args.docs:
            _render_docs(args.spec, args.docs_dest or DOCS_DEST)
            return 0
        with tempfile.TemporaryDirectory(prefix="nsdk-gen-") as tmp:
            fresh = generate_into(Path(tmp), args.spec)
            if args.check:
                text = diff(fresh, args.dest) if args.dest.exists() else f"{args.dest} missing\n"
                if text:
                    sys.stdout.write(text)
                    sys.stdout.write(
                        f"\n{args.dest} is stale: run `nox -s generate` and commit the result.\n"
                    )
                    return 1
                print(f"{args.dest} is up to date with {args.spec.name}")
                return 0
            if args.dest.exists():
                shutil.rmtree(args.dest)
            shutil.copytree(fresh, args.dest)
            print(f"generated {len(_files(args.dest))} files into {args.dest}")
        if args.docs_dest is not None:
            _render_docs(args.spec, args.docs_dest)
        return 0
    except _spec.SpecError as exc:
        print(f"generator: {args.spec}: {exc}", file=sys.stderr)
        return 2
