"""`python -m generator.mermaid`: the docs site's mermaid from the npm registry, checked, cached.

A stand-in `npm` (a real program first on PATH, logging its arguments) hands over the real
tarball the nox session fetched, a tampered one, or fails; so these tests never leave loopback.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from _docs_site import mermaid_pin

FAKE_NPM = """#!{python}
import json, os, shutil, sys
with open(os.environ["FAKE_NPM_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if os.environ.get("FAKE_NPM_FAIL"):
    sys.stderr.write(os.environ["FAKE_NPM_FAIL"] + "\\n")
    sys.exit(1)
destination = sys.argv[sys.argv.index("--pack-destination") + 1]
shutil.copy(os.environ["FAKE_NPM_TARBALL"], os.path.join(destination, "{tarball}"))
"""


@pytest.fixture(scope="module")
def pin(repo_root: Path) -> ModuleType:
    """generator/mermaid.py, with the real tarball the session fetched in its cache."""
    module = mermaid_pin(repo_root)
    assert (module.CACHE / module.TARBALL).is_file(), (
        f"no mermaid tarball in {module.CACHE}: run `{module.FETCH_COMMAND}` (nox does)"
    )
    return module


class FakeNpm:
    """The stand-in npm: what it will hand over, and the argument lists it was called with."""

    def __init__(self, directory: Path, pin: ModuleType) -> None:
        self.bin = directory / "bin"
        self.bin.mkdir()
        self.log = directory / "npm-calls.jsonl"
        self.log.touch()
        program = self.bin / "npm"
        program.write_text(
            FAKE_NPM.format(python=sys.executable, tarball=pin.TARBALL), encoding="utf-8"
        )
        program.chmod(0o755)
        self.env = {
            **os.environ,
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FAKE_NPM_LOG": str(self.log),
            "FAKE_NPM_TARBALL": str(pin.CACHE / pin.TARBALL),
        }

    def calls(self) -> list[list[str]]:
        """Each call's arguments, in order."""
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def npm(tmp_path: Path, pin: ModuleType) -> FakeNpm:
    """A stand-in npm first on PATH for the commands a test runs."""
    return FakeNpm(tmp_path, pin)


def fetch(repo_root: Path, cache: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``python -m generator.mermaid --cache <cache>`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "generator.mermaid", "--cache", str(cache)],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def members(tarball: Path) -> dict[str, bytes]:
    """The script and license in an npm tarball."""
    found: dict[str, bytes] = {}
    with tarfile.open(tarball, mode="r:gz") as archive:
        for name in ("package/dist/mermaid.min.js", "package/LICENSE"):
            stream = archive.extractfile(name)
            assert stream is not None, name
            found[name] = stream.read()
    return found


def test_fetch_checks_the_tarball_then_caches_and_reuses_it(
    repo_root: Path, tmp_path: Path, pin: ModuleType, npm: FakeNpm
) -> None:
    """One `npm pack` of the pinned version; the cache then holds exactly the checked files."""
    cache = tmp_path / "cache"
    first = fetch(repo_root, cache, npm.env)
    assert first.returncode == 0, first.stderr
    assert f"mermaid {pin.VERSION}: fetched and verified" in first.stdout
    [call] = npm.calls()
    destination = call[call.index("--pack-destination") + 1]
    assert call == [
        "pack",
        f"mermaid@{pin.VERSION}",
        "--pack-destination",
        destination,
        "--ignore-scripts",
        "--silent",
    ]
    assert Path(destination).parent == cache  # a scratch dir in the cache, gone afterwards
    assert sorted(p.name for p in cache.iterdir()) == [
        "LICENSE",
        "integrity",
        pin.TARBALL,
        "mermaid.min.js",
    ]
    packed = members(pin.CACHE / pin.TARBALL)
    assert (cache / "mermaid.min.js").read_bytes() == packed["package/dist/mermaid.min.js"]
    assert (cache / "LICENSE").read_bytes() == packed["package/LICENSE"]
    assert (cache / "integrity").read_text(encoding="ascii") == pin.INTEGRITY + "\n"

    second = fetch(repo_root, cache, npm.env)
    assert second.returncode == 0, second.stderr
    assert f"mermaid {pin.VERSION}: cached" in second.stdout
    assert len(npm.calls()) == 1  # no second registry access


def test_a_tarball_not_matching_the_pinned_integrity_is_rejected(
    repo_root: Path, tmp_path: Path, pin: ModuleType, npm: FakeNpm
) -> None:
    """A tampered tarball fails the fetch before anything of it reaches the cache."""
    tampered = tmp_path / "tampered.tgz"
    with tarfile.open(tampered, mode="w:gz") as archive:
        for name, content in (
            ("package/dist/mermaid.min.js", b"window.mermaid = {};"),
            ("package/LICENSE", b"MIT"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    cache = tmp_path / "cache"
    result = fetch(repo_root, cache, {**npm.env, "FAKE_NPM_TARBALL": str(tampered)})
    assert result.returncode == 1
    assert "does not match the pinned integrity" in result.stderr
    assert f"expected {pin.INTEGRITY}" in result.stderr
    assert len(npm.calls()) == 1
    assert list(cache.iterdir()) == []  # no script, no marker, no tarball, no scratch dir


def test_an_npm_failure_is_reported_with_its_output(
    repo_root: Path, tmp_path: Path, pin: ModuleType, npm: FakeNpm
) -> None:
    """npm's own error (an unreachable registry, say) is in the message; nothing is cached."""
    failing = {**npm.env, "FAKE_NPM_FAIL": "npm error code E404 (registry said no)"}
    cache = tmp_path / "cache"
    result = fetch(repo_root, cache, failing)
    assert result.returncode == 1
    assert f"`npm pack mermaid@{pin.VERSION}` failed (exit 1)" in result.stderr
    assert "npm error code E404 (registry said no)" in result.stderr
    assert list(cache.iterdir()) == []


def test_the_build_without_the_cache_fails_naming_the_fetch_command(
    repo_root: Path, tmp_path: Path, pin: ModuleType, npm: FakeNpm
) -> None:
    """The docs build never fetches: with no cache it stops and says which command fetches."""
    pytest.importorskip("mkdocs", reason="the docs dependency group (mkdocs) is not installed")
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "docs" / "index.md").write_text("# Diagrams\n", encoding="utf-8")
    shutil.copy(repo_root / "openapi.yaml", project / "openapi.yaml")
    config = {
        "site_name": "no mermaid cache",
        "docs_dir": "docs",
        "theme": {"name": "material", "font": False},
        "hooks": [str(repo_root / "generator" / "mkdocs_hook.py")],
        "extra_javascript": ["assets/mermaid/mermaid.min.js"],
    }
    (project / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    empty = tmp_path / "empty-cache"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=project,
        env={**npm.env, "NSDK_MERMAID_CACHE": str(empty), "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"mermaid {pin.VERSION} for the docs site is not in {empty / pin.VERSION}" in output
    assert f"run `{pin.FETCH_COMMAND}`" in output
    assert npm.calls() == []  # the build itself never went to the registry
    assert not empty.exists()
