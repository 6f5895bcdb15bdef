"""The release check: is a breaking change announced by the version and the changelog?

Semantic Versioning as Cargo and npm apply it below 1.0: a breaking change needs a new major
version, or a new minor version while the major is 0 (0.1.3 -> 0.2.0). The changelog
(``CHANGELOG.md``, Keep a Changelog) must have a section ``## [X.Y.Z]`` for the new version.
"""

from __future__ import annotations

import datetime
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from ._spec_diff import SpecDiff

__all__ = [
    "ReleaseCheck",
    "ReleaseError",
    "changelog_entry",
    "changelog_has",
    "check_release",
    "project_version",
    "required_bump",
]

_SECTIONS = ("Added", "Changed", "Deprecated", "Removed")


class ReleaseError(Exception):
    """A version in pyproject.toml cannot be read."""


def project_version(pyproject: Path) -> Version:
    """The ``[project] version`` of a pyproject.toml.

    Raises:
        ReleaseError: The file has no readable version.
    """
    try:
        raw = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
        return Version(str(raw))
    except (OSError, KeyError, tomllib.TOMLDecodeError, InvalidVersion) as exc:
        raise ReleaseError(f"{pyproject}: no valid [project] version ({exc})") from None


def required_bump(base: Version) -> Version:
    """The smallest version a breaking change after ``base`` needs (major; minor below 1.0)."""
    if base.major >= 1:
        return Version(f"{base.major + 1}.0.0")
    return Version(f"0.{base.minor + 1}.0")


def _suggested(base: Version, breaking: bool, changed: bool) -> Version:
    if breaking:
        return required_bump(base)
    if changed and base.major >= 1:
        return Version(f"{base.major}.{base.minor + 1}.0")  # new features: minor
    return Version(f"{base.major}.{base.minor}.{base.micro + 1}")


def changelog_has(changelog: Path, version: Version) -> bool:
    """Whether ``changelog`` has a section ``## [version]`` (Keep a Changelog)."""
    try:
        text = changelog.read_text(encoding="utf-8")
    except OSError:
        return False
    pattern = rf"^##\s*\[?v?{re.escape(str(version))}\]?(\s|$)"
    return re.search(pattern, text, flags=re.MULTILINE) is not None


@dataclass(frozen=True)
class ReleaseCheck:
    """The verdict on the version and the changelog."""

    base_version: Version
    version: Version
    #: The version this change calls for: the smallest that fits, or pyproject's if bumped more.
    suggested: Version
    problems: tuple[str, ...]


def check_release(
    *, base_version: Version, version: Version, changelog: Path, breaking: bool, changed: bool
) -> ReleaseCheck:
    """Check that a breaking change comes with a big enough version bump and a changelog entry."""
    suggested = _suggested(base_version, breaking, changed)
    if version > base_version:
        suggested = max(suggested, version)
    problems: list[str] = []
    if breaking:
        needed = required_bump(base_version)
        if version < needed:
            part = "major" if base_version.major >= 1 else "minor (the major is 0)"
            problems.append(
                f"breaking changes need a new {part} version: pyproject.toml says {version}, "
                f'the base {base_version}; set version = "{needed}" (or higher)'
            )
        if not changelog_has(changelog, version):
            problems.append(
                f"{changelog.name} has no entry for {version}: add a section "
                f"'## [{max(version, needed)}] - <date>' (the entry below is ready to paste)"
            )
    return ReleaseCheck(base_version, version, suggested, tuple(problems))


def changelog_entry(diff: SpecDiff, version: Version, today: datetime.date | None = None) -> str:
    """A Keep a Changelog section for the spec part of the change, ready to paste.

    Documentation-only changes (descriptions, examples) get no line; the Python API changes
    are the author's to describe.
    """
    day = (today or datetime.datetime.now(datetime.UTC).date()).isoformat()
    lines = [f"## [{version}] - {day}", ""]
    if diff.api_version_before != diff.api_version_after:
        lines += [
            f"The client follows version {diff.api_version_after} of the API "
            f"(was {diff.api_version_before}).",
            "",
        ]
    for section in _SECTIONS:
        items = [c for c in diff.changes if c.section == section]
        if not items:
            continue
        lines += [f"### {section}", ""]
        for change in items:
            mark = "**Breaking:** " if change.breaking else ""
            if change.kind == "behaviour":
                mark += "Behaviour: "
            lines.append(f"- {mark}`{change.where}`: {change.what}")
        lines.append("")
    if len(lines) == 2:
        lines += ["No change to the HTTP API.", ""]
    return "\n".join(lines).rstrip() + "\n"
