"""``python -m tools.api_diff``: the report, and its exit status.

Exit status: 0 when there is no breaking change, or the breaking changes come with the version
bump and the changelog entry they need; 1 when they do not; 2 when the comparison cannot run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from . import _git, _python_diff, _release, _spec_diff
from ._spec_diff import BEHAVIOUR, BREAKING, DOCS, NON_BREAKING, UNCLASSIFIED, SpecDiff

__all__ = ["main", "render"]

ROOT = Path(__file__).resolve().parent.parent.parent

_HEADINGS = {
    BREAKING: "breaking: clients written against the base may fail",
    NON_BREAKING: "non-breaking",
    BEHAVIOUR: "behaviour: what nsdk does changes (x-nsdk-resend-safe, x-nsdk-role, security)",
    UNCLASSIFIED: "unclassified: review by hand",
    DOCS: "documentation only: descriptions, summaries, examples",
}


def _section(title: str, lines: list[str]) -> list[str]:
    return [f"  {title} ({len(lines)}):", *(f"    - {line}" for line in lines)]


def render(
    base: _git.Base,
    spec: SpecDiff,
    python: list[str],
    release: _release.ReleaseCheck,
    entry: str,
) -> str:
    """The report, as printed."""
    out = [
        f"api_diff: {base.ref} ({base.why}; {base.commit[:12]}) -> the working tree",
        f"  API version (openapi.yaml info.version): {spec.api_version_before} -> "
        f"{spec.api_version_after}",
        f"  nsdk version (pyproject.toml): {release.base_version} -> {release.version}",
        "",
        "Spec changes, classified for clients (api-smart-diff; nsdk's operation facts):",
    ]
    if not spec.changes:
        out.append("  none")
    for kind in (BREAKING, BEHAVIOUR, NON_BREAKING, UNCLASSIFIED, DOCS):
        changes = spec.of_kind(kind)
        if changes:
            lines = [
                f"{c.where}: {c.what}" + (" [breaking]" if c.breaking and kind != BREAKING else "")
                for c in changes
            ]
            out += _section(_HEADINGS[kind], lines)
    out += ["", "Python API changes (griffe's breaking-change check over nsdk and nsdk_api):"]
    out += _section("breaking", python) if python else ["  no breaking change"]
    breaking = bool(spec.breaking or python)
    out += ["", "Verdict:"]
    if release.problems:
        out += [f"  FAIL: {problem}" for problem in release.problems]
    elif breaking:
        out.append(
            f"  breaking changes, announced: version {release.version} (base "
            f"{release.base_version}) and a changelog entry"
        )
    elif spec.changes:
        out.append(f"  no breaking change; suggested next version: {release.suggested}")
    else:
        out.append("  no API change")
    if any(c.section for c in spec.changes):
        out += ["", "Changelog entry for the spec part (paste into CHANGELOG.md):", "", entry]
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Compare the base revision with the working tree; print the report; return the status."""
    parser = argparse.ArgumentParser(
        prog="nox -s api_diff --",
        description="What a change does to nsdk's users: the spec and the Python API of nsdk and "
        "nsdk_api at a base revision against the working tree.",
    )
    parser.add_argument(
        "--base",
        metavar="REF",
        help="the revision to compare with (default: the latest tag v*, else the merge base "
        "with main, else HEAD)",
    )
    parser.add_argument(
        "--repo", type=Path, default=ROOT, help="the project checkout (default: this one)"
    )
    args = parser.parse_args(argv)
    repo: Path = args.repo.resolve()
    try:
        base = _git.resolve_base(repo, args.base)
        with tempfile.TemporaryDirectory(prefix="nsdk-api-diff-base-") as tmp:
            old = _git.export(repo, base.commit, Path(tmp))
            spec = _spec_diff.diff_specs(old / "openapi.yaml", repo / "openapi.yaml")
            python = _python_diff.python_breakages(old, repo)
            base_version = _release.project_version(old / "pyproject.toml")
        version = _release.project_version(repo / "pyproject.toml")
    except (
        _git.GitError,
        _spec_diff.SpecDiffError,
        _release.ReleaseError,
        ModuleNotFoundError,
    ) as exc:
        print(f"api_diff: {exc}", file=sys.stderr)
        return 2
    breaking = bool(spec.breaking or python)
    release = _release.check_release(
        base_version=base_version,
        version=version,
        changelog=repo / "CHANGELOG.md",
        breaking=breaking,
        changed=bool(spec.changes),
    )
    entry = _release.changelog_entry(spec, release.suggested)
    print(render(base, spec, python, release, entry), end="")
    return 1 if release.problems else 0
