"""A change to openapi.yaml reaches the generated docstrings, HTTP reference and explorer."""

from __future__ import annotations

import ast
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml
from _docs_site import SpecChangeSite

Gen = Callable[..., subprocess.CompletedProcess[str]]

NEW_SUMMARY = "Tell me who I am (zebra-4711 marker)."


def changed_spec(repo_root: Path, tmp_path: Path) -> tuple[Path, str]:
    """A temp copy of openapi.yaml with the summary of `me` replaced; return it and the old one."""
    text = (repo_root / "openapi.yaml").read_text(encoding="utf-8")
    old = yaml.safe_load(text)["paths"]["/api/auth/me"]["get"]["summary"]
    assert text.count(f"summary: {old}") == 1
    spec = tmp_path / "openapi.yaml"
    spec.write_text(text.replace(f"summary: {old}", f"summary: {NEW_SUMMARY}"), encoding="utf-8")
    return spec, old


def docstrings(module: Path) -> dict[str, str]:
    """The module's and its functions' docstrings, by name ('' for the module)."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    found = {"": ast.get_docstring(tree) or ""}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[node.name] = ast.get_docstring(node) or ""
    return found


def test_new_summary_in_generated_docstring_and_http_reference(
    repo_root: Path, tmp_path: Path, generator_cli: Gen
) -> None:
    """Regenerating from the changed spec puts the new text in both outputs, the old in neither."""
    spec, old = changed_spec(repo_root, tmp_path)
    pkg, docs = tmp_path / "nsdk_api", tmp_path / "docs"
    result = generator_cli("--spec", str(spec), "--dest", str(pkg), "--docs-dest", str(docs))
    assert result.returncode == 0, result.stdout + result.stderr

    found = docstrings(pkg / "api" / "auth" / "me.py")
    for name in ("", "sync", "sync_detailed", "asyncio", "asyncio_detailed"):
        assert NEW_SUMMARY in found[name], name
        assert old not in found[name], name

    http = (docs / "http.md").read_text(encoding="utf-8")
    section = http.split("## GET /api/auth/me", 1)[1].split("\n## ", 1)[0]
    assert f"**{NEW_SUMMARY}**" in section
    assert old not in http
    # The operations table at the top of the page says it too.
    assert f"| [`me`](#me) | `GET /api/auth/me` | {NEW_SUMMARY} |" in http


def test_docs_only_renders_the_page_without_the_package(
    repo_root: Path, tmp_path: Path, generator_cli: Gen
) -> None:
    """`--docs` renders just the HTTP reference from the given spec."""
    spec, _ = changed_spec(repo_root, tmp_path)
    docs = tmp_path / "docs"
    result = generator_cli("--docs", "--spec", str(spec), "--docs-dest", str(docs))
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "openapi.yaml"]
    assert NEW_SUMMARY in (docs / "http.md").read_text(encoding="utf-8")


def test_committed_module_carries_the_current_summary(repo_root: Path) -> None:
    """The committed generated module's docstrings carry the spec's current summary."""
    spec = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    summary = spec["paths"]["/api/auth/me"]["get"]["summary"]
    found = docstrings(repo_root / "generated" / "nsdk_api" / "api" / "auth" / "me.py")
    assert summary in found[""] and summary in found["sync"]


def test_docs_and_check_do_not_combine(generator_cli: Gen) -> None:
    """The docs pages are never committed, so there is nothing to --check them against."""
    result = generator_cli("--docs", "--check")
    assert result.returncode == 2
    assert "do not combine" in result.stderr


def test_added_operation_appears_in_the_explorer_after_a_rebuild(
    repo_root: Path, spec_change_site: SpecChangeSite
) -> None:
    """A rebuild from a spec with one more operation puts it in the spec the explorer loads.

    The repository's hook, theme, Swagger UI settings and explorer page, built around the changed
    spec (tests/browser checks that Swagger UI then lists it).
    """
    site, (operation_id, method, path) = spec_change_site.site.path, spec_change_site.added
    loaded = json.loads((site / "api-explorer" / "openapi.json").read_text(encoding="utf-8"))
    assert loaded["paths"][path][method.lower()]["operationId"] == operation_id
    original = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    assert set(loaded["paths"]) == set(original["paths"]) | {path}
    # The explorer page's iframe is the one that loads it; the HTTP reference has it too.
    frame = next((site / "api-explorer").glob("swagger-*.html")).read_text(encoding="utf-8")
    assert 'var url = "openapi.json";' in frame
    assert f"GET {path}" in (site / "reference" / "http" / "index.html").read_text("utf-8")
