"""A temporary git repository holding a copy of the project, with a tagged base release.

The module-scoped ``base_repo`` is built once: the project's spec, generator, templates,
overlay, pyproject.toml and CHANGELOG.md are copied, ``generated/`` is regenerated there (so it
matches the copied generator exactly), and the result is committed on ``main`` and tagged
``v0.1.0``. Each test works on its own copy (``repo``, a plain directory copy with its ``.git``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(os.environ.get("NSDK_REPO_ROOT", Path(__file__).resolve().parents[2]))
COPIED = ("openapi.yaml", "pyproject.toml", "CHANGELOG.md", "generator", "templates", "overlay")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "api-diff test",
    "GIT_AUTHOR_EMAIL": "api-diff@example.com",
    "GIT_COMMITTER_NAME": "api-diff test",
    "GIT_COMMITTER_EMAIL": "api-diff@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with a fixed identity and no user configuration."""
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    )
    return result.stdout.strip()


@dataclass
class Repo:
    """A project copy under git, with helpers to change it the way a maintainer would."""

    path: Path

    @property
    def spec_path(self) -> Path:
        """Its openapi.yaml."""
        return self.path / "openapi.yaml"

    def spec(self) -> dict[str, Any]:
        """Its openapi.yaml, parsed."""
        data: dict[str, Any] = yaml.safe_load(self.spec_path.read_text(encoding="utf-8"))
        return data

    def write_spec(self, spec: dict[str, Any]) -> None:
        """Replace its openapi.yaml."""
        self.spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")

    def replace(self, relative: str, old: str, new: str) -> None:
        """Replace one exact occurrence of ``old`` in a file of the copy."""
        path = self.path / relative
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} in {relative}"
        path.write_text(text.replace(old, new), encoding="utf-8")

    def regenerate(self) -> None:
        """Regenerate its generated/nsdk_api from its openapi.yaml (``python -m generator``)."""
        result = subprocess.run(
            [sys.executable, "-m", "generator"],
            cwd=self.path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def set_version(self, version: str) -> None:
        """Set pyproject.toml's ``[project] version``."""
        text = (self.path / "pyproject.toml").read_text(encoding="utf-8")
        lines = [
            f'version = "{version}"' if line.startswith("version = ") else line
            for line in text.splitlines()
        ]
        (self.path / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def add_changelog_entry(self, version: str, body: str) -> None:
        """Add a ``## [version]`` section after ``## [Unreleased]`` in CHANGELOG.md."""
        self.replace("CHANGELOG.md", "## [Unreleased]\n", f"## [Unreleased]\n\n{body}")
        assert f"## [{version}]" in body

    def commit(self, message: str, tag: str | None = None) -> None:
        """Commit everything (and tag it)."""
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        if tag is not None:
            git(self.path, "tag", tag)

    def api_diff(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``python -m tools.api_diff --repo <this copy>`` (the tool of the real checkout)."""
        return subprocess.run(
            [sys.executable, "-m", "tools.api_diff", "--repo", str(self.path), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The project copied into a fresh git repository, committed on main and tagged v0.1.0."""
    path = tmp_path_factory.mktemp("api-diff-base") / "project"
    path.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=ignore)
        else:
            shutil.copy2(source, path / name)
    repo = Repo(path)
    repo.set_version("0.1.0")
    repo.regenerate()
    git(path, "init", "-q", "-b", "main")
    repo.commit("nsdk 0.1.0", tag="v0.1.0")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def repo(base_repo: Path, tmp_path: Path) -> Repo:
    """A copy of the tagged base repository that a test may change freely."""
    target = tmp_path / "project"
    shutil.copytree(base_repo, target, symlinks=True)
    return Repo(target)
