"""Shared fixtures: the repo root and the generator CLI; the suite-wide secret scan plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("NSDK_REPO_ROOT", Path(__file__).resolve().parent.parent))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the generator and openapi.yaml live there)."""
    return ROOT


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m generator`` from the repo root and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "generator", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="session")
def generator_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m generator`` with arguments (see run_generator)."""
    return run_generator


# tests/ itself (helpers such as the secret-scan plugin) is importable; the source tree is not.
sys.path.insert(0, str(Path(__file__).resolve().parent))
# _docs_site: the documentation site, built once per session (tests/docs, tests/browser).
pytest_plugins = ["_secret_scan", "_docs_site"]
