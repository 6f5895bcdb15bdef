"""The documentation site: it builds with --strict and covers every operation and public name."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nsdk
import pytest
import yaml
from nsdk_api._operations import OPERATIONS

pytest.importorskip("mkdocs", reason="the docs dependency group (mkdocs) is not installed")

BUILD_BUDGET = 30.0  # seconds: the docs build must stay cheap enough to run in every test run
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def site(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the site once, as `nox -s docs` does, into a temporary directory."""
    out = tmp_path_factory.mktemp("site")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=repo_root,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < BUILD_BUDGET, f"the docs build took {elapsed:.1f}s"
    return out


def page(site: Path, name: str) -> str:
    """The HTML of a built page (``reference/http`` -> ``reference/http/index.html``)."""
    return (site / name / "index.html").read_text(encoding="utf-8")


def text_of(markup: str) -> str:
    """The visible text of an HTML page, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def spec_operations(repo_root: Path) -> list[dict[str, Any]]:
    """Every operation in openapi.yaml, read without the generator."""
    spec = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    found = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                found.append({"method": method.upper(), "path": path, **item[method]})
    return found


def test_strict_build_produces_every_page(site: Path) -> None:
    """`mkdocs build --strict` passes and produces the pages the nav promises."""
    for name in (
        "",
        "quickstart",
        "auth-flow",
        "errors-and-retries",
        "configuration",
        "regenerating",
        "reference/nsdk",
        "reference/nsdk_api",
        "reference/http",
    ):
        assert (site / name / "index.html").is_file(), name


def test_every_operation_is_in_the_http_reference(site: Path, repo_root: Path) -> None:
    """Each operation of openapi.yaml has its section, method, path and summary on the HTTP page."""
    http = page(site, "reference/http")
    text = text_of(http)
    operations = spec_operations(repo_root)
    assert operations
    for op in operations:
        name = next(o.name for o in OPERATIONS.values() if o.operation_id == op["operationId"])
        assert f'id="{name}"' in http, op["operationId"]
        assert f"{op['method']} {op['path']}" in text, op["operationId"]
        assert " ".join(op["summary"].split()) in text, op["operationId"]


def test_every_operation_is_in_the_python_reference(site: Path, repo_root: Path) -> None:
    """Each operation's generated module is rendered in the nsdk_api reference."""
    api = page(site, "reference/nsdk_api")
    for op in spec_operations(repo_root):
        module = next(o.name for o in OPERATIONS.values() if o.operation_id == op["operationId"])
        tag = op.get("tags", ["default"])[0]
        assert f'id="nsdk_api.api.{tag}.{module}"' in api, op["operationId"]
        assert f'id="nsdk_api.api.{tag}.{module}.sync"' in api, op["operationId"]


@pytest.mark.parametrize("name", nsdk.__all__)
def test_every_public_name_is_in_the_api_reference(site: Path, name: str) -> None:
    """Each name in nsdk.__all__ has its own entry in the nsdk reference."""
    assert f'id="nsdk.{name}"' in page(site, "reference/nsdk"), name


def test_every_exception_is_in_the_errors_page(site: Path) -> None:
    """The errors page's tree and table mention every exception nsdk exports."""
    text = text_of(page(site, "errors-and-retries"))
    exceptions = [
        name
        for name in nsdk.__all__
        if isinstance(getattr(nsdk, name), type) and issubclass(getattr(nsdk, name), Exception)
    ]
    assert "NsdkError" in exceptions
    missing = [name for name in exceptions if name not in text]
    assert not missing, f"not on the errors page: {missing}"


def test_errors_page_tree_is_the_one_in_the_code(repo_root: Path) -> None:
    """The exception tree on the errors page is exactly the one drawn in nsdk._errors."""
    import nsdk._errors

    doc = nsdk._errors.__doc__ or ""
    tree = [
        line.strip("\n")[4:]
        for line in doc.splitlines()
        if line.startswith("    ") and ("── " in line or line.strip().startswith("NsdkError"))
    ]
    assert tree and tree[0].startswith("NsdkError")
    source = (repo_root / "docs" / "errors-and-retries.md").read_text(encoding="utf-8")
    block = "```text\n" + "\n".join(tree) + "\n```"
    assert block in source, "copy the tree from overlay/nsdk/_errors.py into the errors page"


def test_diagrams_are_mermaid_blocks(site: Path) -> None:
    """The auth-flow page carries its sequence diagrams as mermaid blocks the theme renders."""
    auth = page(site, "auth-flow")
    assert auth.count('class="mermaid"') >= 3
    assert auth.count("sequenceDiagram") >= 3
