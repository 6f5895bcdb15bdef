"""The docs site's mermaid, fetched from the npm registry at build time, never from a CDN.

The site's diagrams are drawn in the browser by ``dist/mermaid.min.js`` of the npm package pinned
here (self-contained: no dependency of the package is needed). Material would load
mermaid from a CDN when the page is viewed; with the site's own copy defined first it does not.

``python -m generator.mermaid`` (the nox sessions that build the site run it in their setup, like
their pip installs) fetches the package's one tarball with ``npm pack``, checks it against the
pinned npm integrity (sha512) before reading anything from it, and extracts only
``dist/mermaid.min.js`` and ``LICENSE`` into the git-ignored cache ``.cache/mermaid/<version>/``
(or ``$NSDK_MERMAID_CACHE/<version>/``). It does nothing when that cache is already complete.
The docs build (generator/mkdocs_hook.py) only reads the cache, and fails with this command in
its message when the cache is missing.

To update: change ``VERSION`` and ``INTEGRITY`` (``npm view mermaid@<version> dist.integrity``),
keeping the major version the one Material expects (tests/docs checks it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "mermaid"
VERSION = "11.17.2"
# npm's integrity of the package tarball: `npm view mermaid@<VERSION> dist.integrity`.
INTEGRITY = "sha512-" + (
    "V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/qt5gHO73aCleBBg=="
)
ROOT = Path(__file__).resolve().parent.parent
# NSDK_MERMAID_CACHE moves the cache (for example to a CI cache directory shared by checkouts).
CACHE = Path(os.environ.get("NSDK_MERMAID_CACHE") or ROOT / ".cache" / PACKAGE) / VERSION
FETCH_COMMAND = "python -m generator.mermaid"
TARBALL = f"{PACKAGE}-{VERSION}.tgz"  # npm pack's name for it
# What the site needs, from the tarball (npm packs everything under package/) to the cache.
MEMBERS = {"package/dist/mermaid.min.js": "mermaid.min.js", "package/LICENSE": "LICENSE"}
# Written last, after every member: its presence, with the pinned integrity, marks a complete
# cache extracted from a verified tarball.
MARKER = "integrity"


class MermaidError(Exception):
    """The package could not be fetched, did not match its integrity, or is not cached."""


@dataclass(frozen=True)
class Cached:
    """The cached, integrity-checked files: the script and its license."""

    script: Path
    license: Path
    tarball: Path


def integrity_of(data: bytes) -> str:
    """npm's integrity string (Subresource Integrity form) of a tarball: ``sha512-<base64>``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def cached(cache: Path = CACHE) -> Cached | None:
    """The complete cache in `cache`, or None when it is missing, partial or of another pin."""
    marker = cache / MARKER
    files = Cached(cache / "mermaid.min.js", cache / "LICENSE", cache / TARBALL)
    try:
        complete = marker.read_text(encoding="ascii").strip() == INTEGRITY
    except OSError:
        return None
    if complete and all(p.is_file() for p in (files.script, files.license, files.tarball)):
        return files
    return None


def require(cache: Path = CACHE) -> Cached:
    """The cached files; `MermaidError` naming the fetch command when they are not there."""
    files = cached(cache)
    if files is None:
        raise MermaidError(
            f"mermaid {VERSION} for the docs site is not in {cache}: run `{FETCH_COMMAND}` "
            "from the repository root once (it needs npm and the npm registry; the nox sessions "
            "docs, explore and tests run it themselves)"
        )
    return files


def verified_members(tarball: Path) -> dict[str, bytes]:
    """The `MEMBERS` of a tarball whose integrity is the pinned one (checked first)."""
    data = tarball.read_bytes()
    found = integrity_of(data)
    if found != INTEGRITY:
        raise MermaidError(
            f"{tarball.name} does not match the pinned integrity of {PACKAGE}@{VERSION}: "
            f"expected {INTEGRITY}, got {found}"
        )
    members: dict[str, bytes] = {}
    with tarfile.open(tarball, mode="r:gz") as archive:
        for member in archive:
            if member.name not in MEMBERS or member.name in members:
                continue
            # Only regular files, read into memory and written under our own names below: no
            # path, link or mode from the archive ever reaches the file system.
            stream = archive.extractfile(member) if member.isreg() else None
            if stream is None:
                raise MermaidError(f"{member.name} in {tarball.name} is not a regular file")
            members[member.name] = stream.read()
            if len(members) == len(MEMBERS):
                break
    missing = sorted(set(MEMBERS) - set(members))
    if missing:
        raise MermaidError(f"{tarball.name} lacks {', '.join(missing)}")
    return members


def npm_pack(destination: Path) -> Path:
    """``npm pack mermaid@VERSION`` into `destination`: the registry's tarball, no install."""
    npm = shutil.which("npm")
    if npm is None:
        raise MermaidError(
            "npm is needed to fetch mermaid for the docs site (Debian: apt-get install npm; "
            ".ci/run installs it)"
        )
    command = [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(destination)]
    result = subprocess.run(
        [*command, "--ignore-scripts", "--silent"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    tarball = destination / TARBALL
    if result.returncode != 0 or not tarball.is_file():
        raise MermaidError(
            f"`npm pack {PACKAGE}@{VERSION}` failed (exit {result.returncode}):\n"
            + (result.stderr or result.stdout).strip()
        )
    return tarball


def fetch(cache: Path = CACHE) -> Cached:
    """Fill `cache` from the npm registry unless it is complete already; return its files."""
    files = cached(cache)
    if files is not None:
        return files
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        tarball = npm_pack(Path(scratch))
        members = verified_members(tarball)  # nothing is read from it before this check
        for name, content in members.items():
            _write(cache / MEMBERS[name], content)
        os.replace(tarball, cache / TARBALL)  # kept: tests/docs re-checks the site against it
    _write(cache / MARKER, (INTEGRITY + "\n").encode("ascii"))
    return require(cache)


def _write(path: Path, content: bytes) -> None:
    """Write `content` to `path` atomically (a reader never sees half a file)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(content)
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    """Fetch mermaid for the docs site into the cache (``python -m generator.mermaid``)."""
    parser = argparse.ArgumentParser(
        prog=FETCH_COMMAND,
        description=f"Fetch {PACKAGE}@{VERSION} for the docs site from the npm registry, "
        "check its pinned integrity and cache dist/mermaid.min.js (once).",
    )
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"default: {CACHE}")
    args = parser.parse_args(argv)
    started = time.monotonic()
    hit = cached(args.cache) is not None
    try:
        files = fetch(args.cache)
    except MermaidError as error:
        print(f"{FETCH_COMMAND}: {error}", file=sys.stderr)
        return 1
    how = "cached" if hit else "fetched and verified"
    print(f"{PACKAGE} {VERSION}: {how}, {files.script} ({time.monotonic() - started:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
