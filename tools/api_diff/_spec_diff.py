"""The spec part: what changed in openapi.yaml, classified for clients.

Structural changes come from api-smart-diff (a maintained OpenAPI 3.0/3.1 differ on npm, run by
``compare.cjs``): it classifies each change for a client as breaking (an operation or response
field removed, a request field made required or added as required, a type or an enum narrowed...),
non-breaking (an operation or an optional field added...), an annotation (descriptions,
examples) or unclassified. It reports a change once where operations use it (dereferenced), so
its second report under ``components/`` is dropped here.

What nsdk itself acts on comes from the generator's own operation facts (``generator._spec``,
the parser behind ``nsdk_api._operations``): ``x-nsdk-resend-safe`` (whether nsdk resends a
request after its bytes may have reached the server), ``x-nsdk-role`` (login, refresh, logout or
call: what a 2xx does to the session) and ``security`` (whether nsdk sends the bearer token).
Those are reported as behaviour changes, with what they do to nsdk's users.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator import _spec

__all__ = [
    "BEHAVIOUR",
    "BREAKING",
    "DOCS",
    "NON_BREAKING",
    "UNCLASSIFIED",
    "SpecChange",
    "SpecDiff",
    "SpecDiffError",
    "diff_specs",
]

HERE = Path(__file__).resolve().parent
COMPARE = HERE / "compare.cjs"
INSTALL_HINT = "npm ci --ignore-scripts --prefix tools/api_diff"

BREAKING = "breaking"
NON_BREAKING = "non-breaking"
BEHAVIOUR = "behaviour"
DOCS = "docs"
UNCLASSIFIED = "unclassified"

#: api-smart-diff's classes, as the report names them.
_KINDS = {
    "breaking": BREAKING,
    "non-breaking": NON_BREAKING,
    "deprecated": NON_BREAKING,
    "annotation": DOCS,
    "unclassified": UNCLASSIFIED,
}
#: Keys the operation facts report (as behaviour), not api-smart-diff.
_FACT_KEYS = {"x-nsdk-resend-safe", "x-nsdk-role", "security"}
#: Components the differ already reports where operations use them.
_DEREFERENCED = {"schemas", "responses", "parameters", "requestBodies", "headers", "examples"}

_ROLE_MEANS = {
    "login": "a 2xx answer starts the session (its tokens are stored)",
    "refresh": "it rotates the token pair; never sent twice",
    "logout": "any answer ends the session",
    "call": "an ordinary call, signed with the session's token when it needs one",
}


class SpecDiffError(Exception):
    """The spec comparison could not run (no node, the differ not installed, a broken spec)."""


@dataclass(frozen=True)
class SpecChange:
    """One change of the spec, classified for clients.

    Attributes:
        kind: ``breaking``, ``non-breaking``, ``behaviour``, ``docs`` or ``unclassified``.
        where: The operation (``POST /api/auth/login``) or the place in the document.
        what: What changed, in words.
        section: The Keep a Changelog section it belongs to (Added, Changed, Deprecated,
            Removed), or "" when it has no changelog line (docs).
        breaking: Whether it breaks clients (always for ``breaking``; also a behaviour change
            such as an operation that now requires a token).
    """

    kind: str
    where: str
    what: str
    section: str
    breaking: bool


@dataclass(frozen=True)
class SpecDiff:
    """The spec part of the report."""

    api_version_before: str
    api_version_after: str
    changes: tuple[SpecChange, ...]

    @property
    def breaking(self) -> list[SpecChange]:
        """The changes that break clients."""
        return [c for c in self.changes if c.breaking]

    def of_kind(self, kind: str) -> list[SpecChange]:
        """The changes of one kind."""
        return [c for c in self.changes if c.kind == kind]


def _node_modules_ready() -> None:
    pinned = json.loads((HERE / "package.json").read_text(encoding="utf-8"))["dependencies"]
    for name, version in pinned.items():
        manifest = HERE / "node_modules" / name / "package.json"
        try:
            installed = json.loads(manifest.read_text(encoding="utf-8"))["version"]
        except (OSError, ValueError, KeyError):
            installed = None
        if installed != version:
            raise SpecDiffError(
                f"the OpenAPI differ {name} {version} is not installed in tools/api_diff: run "
                f"`{INSTALL_HINT}` (nox -s api_diff does)"
            )


def run_differ(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """api-smart-diff's changes from ``before`` to ``after`` (``compare.cjs``, under node)."""
    node = shutil.which("node")
    if node is None:
        raise SpecDiffError("node is not on PATH: the spec comparison runs api-smart-diff on it")
    _node_modules_ready()
    with tempfile.TemporaryDirectory(prefix="nsdk-api-diff-") as tmp:
        files: list[str] = []
        for name, doc in (("before", before), ("after", after)):
            path = Path(tmp) / f"{name}.json"
            path.write_text(json.dumps(doc), encoding="utf-8")
            files.append(str(path))
        result = subprocess.run(
            [node, str(COMPARE), *files], capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        raise SpecDiffError(f"api-smart-diff failed:\n{result.stderr.strip()}")
    diffs: list[dict[str, Any]] = json.loads(result.stdout)
    return diffs


def _where(path: list[Any]) -> str:
    if path[0] == "paths" and len(path) >= 3:
        return f"{str(path[2]).upper()} {path[1]}"
    if path[0] == "paths" and len(path) == 2:
        return f"path {path[1]}"
    return ".".join(str(p) for p in path)


def _section(kind: str, action: str, raw_type: str) -> str:
    if kind == DOCS:
        return ""
    if raw_type == "deprecated":
        return "Deprecated"
    if action == "remove" and kind == BREAKING:
        return "Removed"
    if action == "add" and kind == NON_BREAKING:
        return "Added"
    return "Changed"


def _from_differ(diffs: list[dict[str, Any]]) -> list[SpecChange]:
    changes: list[SpecChange] = []
    seen: set[tuple[str, str, str]] = set()
    for diff in diffs:
        path: list[Any] = diff["path"]
        if not path or (path[0] == "info" and path[1:] == ["version"]):
            continue  # the API version is the report's heading
        if path[0] == "security" or (path[0] == "paths" and _FACT_KEYS & set(path[3:4])):
            continue  # the operation facts report these, with what nsdk does about them
        if path[0] == "components" and len(path) > 1 and path[1] in _DEREFERENCED:
            continue  # reported where operations use it
        kind = _KINDS.get(diff["type"], UNCLASSIFIED)
        what = diff.get("description") or f"{diff['action']} {'.'.join(map(str, path))}"
        if path[0] == "paths" and path[3:4] == ["operationId"]:
            # Generated modules and functions are named after it: code calling them breaks.
            kind = BREAKING
            what = (
                f"operationId {diff.get('before')!r} -> {diff.get('after')!r}: the generated "
                "module and function are renamed"
            )
        key = (kind, _where(path), what)
        if key in seen:  # e.g. one line per enum value for a single replaced enum
            continue
        seen.add(key)
        section = _section(kind, diff["action"], diff["type"])
        changes.append(SpecChange(kind, _where(path), what, section, kind == BREAKING))
    return changes


def _facts(spec: dict[str, Any], which: str) -> dict[tuple[str, str], _spec.OperationFacts]:
    try:
        return {(op.method, op.path): op for op in _spec.operations(spec)}
    except _spec.SpecError as exc:
        raise SpecDiffError(f"the {which} openapi.yaml breaks a convention: {exc}") from None


def _from_facts(before: dict[str, Any], after: dict[str, Any]) -> list[SpecChange]:
    old, new = _facts(before, "base"), _facts(after, "working tree's")
    changes: list[SpecChange] = []
    for key in sorted(old.keys() & new.keys()):
        a, b = old[key], new[key]
        where = f"{key[0]} {key[1]}"
        if a.resend_safe != b.resend_safe:
            what = (
                "x-nsdk-resend-safe true -> false: nsdk no longer resends "
                f"`{b.operation_id}` once its bytes may have reached the server (a dropped "
                "connection or a 5xx after sending now raises instead of being retried)"
                if a.resend_safe
                else "x-nsdk-resend-safe false -> true: nsdk now resends "
                f"`{b.operation_id}` after a dropped connection or a retryable 5xx, even when "
                "the server may have received it"
            )
            changes.append(SpecChange(BEHAVIOUR, where, what, "Changed", False))
        if a.role != b.role:
            what = (
                f"x-nsdk-role {a.role} -> {b.role}: {_ROLE_MEANS.get(b.role, b.role)} "
                f"(was: {_ROLE_MEANS.get(a.role, a.role)})"
            )
            changes.append(SpecChange(BEHAVIOUR, where, what, "Changed", False))
        if a.authenticated != b.authenticated:
            if b.authenticated:
                what = (
                    "security: now requires a bearer token; nsdk signs it with the session's "
                    "token, and calling it without a session raises NotAuthenticatedError"
                )
            else:
                what = "security: no longer requires a bearer token; nsdk sends it unsigned"
            changes.append(SpecChange(BEHAVIOUR, where, what, "Changed", b.authenticated))
    return changes


def diff_specs(before_path: Path, after_path: Path) -> SpecDiff:
    """Compare two openapi.yaml files: the classified changes from ``before`` to ``after``.

    Raises:
        SpecDiffError: The differ cannot run, or a spec breaks nsdk's conventions.
    """
    before, after = _spec.load(before_path), _spec.load(after_path)
    changes = _from_differ(run_differ(before, after)) + _from_facts(before, after)
    return SpecDiff(
        api_version_before=str(before.get("info", {}).get("version", "?")),
        api_version_after=str(after.get("info", {}).get("version", "?")),
        changes=tuple(changes),
    )
