"""A pytest plugin: the documentation site, built once per test session, and a spec-change build.

tests/docs reads the built HTML and tests/browser opens it in Chromium; both use this one build
(``built_site``), made the way ``nox -s docs`` makes it (``mkdocs build --strict``), into a
temporary directory. It takes several seconds, so it is made only when a test asks for it.

``explorer_project`` makes a small mkdocs project around the repository's own docs hook, theme,
Swagger UI settings and API Explorer page, but with a changed spec: what a rebuild after a spec
change produces, in about a second instead of a full build.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ADDED_PATH = "/api/auth/sessions"
ADDED_OPERATION_ID = "listSessions"
ADDED_SUMMARY = "List the signed-in user's sessions (zebra-4711 marker)."


@dataclass(frozen=True)
class BuiltSite:
    """The built site's directory and how long the build took."""

    path: Path
    seconds: float


def build_site(config_dir: Path, out: Path, *, strict: bool = True) -> BuiltSite:
    """Run ``mkdocs build`` for the mkdocs.yml in `config_dir`; fail with its output."""
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            *(["--strict"] if strict else []),
            "-d",
            str(out),
        ],
        cwd=config_dir,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    return BuiltSite(out, elapsed)


@pytest.fixture(scope="session")
def built_site(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    """The repository's site, built once for the whole session (skipped without mkdocs)."""
    pytest.importorskip("mkdocs", reason="the docs dependency group (mkdocs) is not installed")
    return build_site(repo_root, tmp_path_factory.mktemp("site"))


def mermaid_pin(repo_root: Path) -> ModuleType:
    """generator/mermaid.py (stdlib only): the pinned mermaid, its cache and its fetch command.

    Loaded from its file: the source tree is not importable in the tests.
    """
    spec = importlib.util.spec_from_file_location(
        "_nsdk_docs_mermaid", repo_root / "generator" / "mermaid.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


class _MkdocsLoader(yaml.SafeLoader):
    """Reads mkdocs.yml, keeping ``!!python/name:`` tags as their dotted names."""


_MkdocsLoader.add_multi_constructor(
    "tag:yaml.org,2002:python/name:", lambda loader, suffix, node: suffix
)


def mkdocs_config(repo_root: Path) -> dict[str, Any]:
    """The repository's mkdocs.yml as data."""
    text = (repo_root / "mkdocs.yml").read_text(encoding="utf-8")
    return dict(yaml.load(text, Loader=_MkdocsLoader))  # a SafeLoader subclass


def spec_with_added_operation(repo_root: Path) -> dict[str, Any]:
    """openapi.yaml plus ``GET /api/auth/sessions`` (a copy of ``me`` with its own id)."""
    spec = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    assert ADDED_PATH not in spec["paths"]
    operation = copy.deepcopy(spec["paths"]["/api/auth/me"]["get"])
    operation.update(operationId=ADDED_OPERATION_ID, summary=ADDED_SUMMARY)
    spec["paths"][ADDED_PATH] = {"get": operation}
    return dict(spec)


def explorer_project(repo_root: Path, directory: Path) -> tuple[Path, tuple[str, str, str]]:
    """A small mkdocs project: the repo's hook, theme, Swagger UI plugin and explorer page.

    Its openapi.yaml is the repository's plus one operation. Returns the project directory and
    the added operation as (operationId, METHOD, path).
    """
    config = mkdocs_config(repo_root)
    swagger = [p for p in config["plugins"] if isinstance(p, dict) and "swagger-ui-tag" in p]
    assert swagger, "mkdocs.yml lost its swagger-ui-tag plugin"
    docs = directory / "docs"
    docs.mkdir(parents=True)
    shutil.copy(repo_root / "docs" / "api-explorer.md", docs / "api-explorer.md")
    (docs / "index.md").write_text("# Spec change check\n", encoding="utf-8")
    small = {
        "site_name": "spec change check",
        "docs_dir": "docs",
        "theme": config["theme"],
        "hooks": [str(repo_root / hook) for hook in config["hooks"]],
        "plugins": swagger,
    }
    (directory / "mkdocs.yml").write_text(yaml.safe_dump(small, sort_keys=False), encoding="utf-8")
    spec = spec_with_added_operation(repo_root)
    (directory / "openapi.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return directory, (ADDED_OPERATION_ID, "GET", ADDED_PATH)


@dataclass(frozen=True)
class SpecChangeSite:
    """The explorer rebuilt from a spec with one more operation (see ``explorer_project``)."""

    site: BuiltSite
    added: tuple[str, str, str]  # (operationId, METHOD, path)


@pytest.fixture(scope="session")
def spec_change_site(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> SpecChangeSite:
    """The small explorer project built once per session (tests/docs and tests/browser)."""
    pytest.importorskip("mkdocs", reason="the docs dependency group (mkdocs) is not installed")
    project, added = explorer_project(repo_root, tmp_path_factory.mktemp("spec-change"))
    site = build_site(project, tmp_path_factory.mktemp("spec-change-site"), strict=False)
    return SpecChangeSite(site, added)
