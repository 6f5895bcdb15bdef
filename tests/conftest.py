"""Shared fixtures: the repo root, and generating a client package from a spec into a temp dir."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

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


@pytest.fixture
def generate_package(tmp_path: Path) -> Callable[[dict[str, Any]], ModuleType]:
    """Generate a package from a spec (a dict) and import it under a unique name."""

    def _generate(spec: dict[str, Any]) -> ModuleType:
        name = f"gen_{uuid.uuid4().hex[:8]}"
        spec_path = tmp_path / f"{name}.yaml"
        spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        result = run_generator("--spec", str(spec_path), "--dest", str(tmp_path / name))
        assert result.returncode == 0, result.stdout + result.stderr
        sys.path.insert(0, str(tmp_path))
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(str(tmp_path))

    return _generate


# tests/ itself (helpers such as the secret-scan plugin) is importable; the source tree is not.
sys.path.insert(0, str(Path(__file__).resolve().parent))
pytest_plugins = ["_secret_scan"]
