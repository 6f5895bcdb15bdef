"""The base revision: which one (a version tag, the merge base with main, HEAD) and its files.

The base is read with ``git archive`` into a temporary directory: the working tree, the index
and the repository's refs are never touched (no checkout, no worktree).
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Base", "GitError", "export", "git", "resolve_base"]

#: What the comparison reads at both revisions.
TRACKED = ("openapi.yaml", "pyproject.toml", "overlay", "generated")


class GitError(Exception):
    """A git command failed, or the repository lacks what the comparison needs."""


@dataclass(frozen=True)
class Base:
    """The revision compared with the working tree.

    Attributes:
        ref: What the user or the default chose (a tag, a commit, ``HEAD``).
        commit: The full commit id.
        why: How it was chosen, for the report.
    """

    ref: str
    commit: str
    why: str


def git_bytes(repo: Path, *args: str) -> bytes:
    """Run ``git -C repo args`` and return its standard output (raise GitError on failure)."""
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args)}: {message}")
    return result.stdout


def git(repo: Path, *args: str) -> str:
    """Run ``git -C repo args`` and return its output as stripped text."""
    return git_bytes(repo, *args).decode().strip()


def _try(repo: Path, *args: str) -> str | None:
    try:
        out = git(repo, *args)
    except GitError:
        return None
    return out or None


def _exists(repo: Path, commit: str, path: str) -> bool:
    try:
        git_bytes(repo, "cat-file", "-e", f"{commit}:{path}")
    except GitError:
        return False
    return True


def resolve_base(repo: Path, ref: str | None) -> Base:
    """The base to compare with: ``ref``, else the latest version tag, else the merge base.

    Without ``ref``: the most recent tag ``v*`` reachable from HEAD; else the merge base of HEAD
    with ``main`` (or ``origin/main``); when that is HEAD itself, or there is no ``main``, HEAD
    (the comparison is then HEAD against the working tree).

    Raises:
        GitError: ``repo`` is not a git repository with a commit, or ``ref`` names no commit.
    """
    head = _try(repo, "rev-parse", "--verify", "HEAD^{commit}")
    if head is None:
        raise GitError(f"{repo} is not a git repository with at least one commit")
    if ref is not None:
        commit = _try(repo, "rev-parse", "--verify", f"{ref}^{{commit}}")
        if commit is None:
            raise GitError(f"--base {ref!r} names no commit in {repo}")
        return Base(ref, commit, "given with --base")
    tag = _try(repo, "describe", "--tags", "--abbrev=0", "--match", "v[0-9]*", "HEAD")
    if tag is not None:
        commit = git(repo, "rev-parse", f"{tag}^{{commit}}")
        return Base(tag, commit, "the latest version tag")
    for main in ("main", "origin/main"):
        merge_base = _try(repo, "merge-base", "HEAD", main)
        if merge_base is None:
            continue
        if merge_base == head:
            return Base("HEAD", head, f"no version tag; the merge base with {main} is HEAD")
        return Base(merge_base[:12], merge_base, f"no version tag; the merge base with {main}")
    return Base("HEAD", head, "no version tag and no main branch")


def export(repo: Path, commit: str, dest: Path) -> Path:
    """Write the base's files the comparison reads (``TRACKED``) into ``dest``; return it."""
    present = [path for path in TRACKED if _exists(repo, commit, path)]
    missing = {"openapi.yaml", "pyproject.toml"} - set(present)
    if missing:
        raise GitError(f"the base {commit[:12]} has no {', '.join(sorted(missing))}")
    data = git_bytes(repo, "archive", "--format=tar", commit, "--", *present)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(dest, filter="data")
    return dest
