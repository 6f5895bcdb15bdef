"""``python -m tools.api_diff`` on a copy of the project in a temporary git repository.

Each test changes the copy the way a maintainer would (edit openapi.yaml, regenerate, bump the
version, write the changelog) and checks the report and the exit status against the base
release tagged ``v0.1.0`` (see conftest.py).
"""

from __future__ import annotations

from typing import Any

from .conftest import Repo, git

SPEC = "Spec changes, classified for clients (api-smart-diff; nsdk's operation facts):"
PYTHON = "Python API changes (griffe's breaking-change check over nsdk and nsdk_api):"
ENTRY = "Changelog entry for the spec part (paste into CHANGELOG.md):"


def section(stdout: str, title: str) -> list[str]:
    """The report's lines under ``title``, up to the next blank line."""
    lines = stdout.splitlines()
    start = lines.index(title) + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def schemas(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's components.schemas."""
    found: dict[str, Any] = spec["components"]["schemas"]
    return found


def test_optional_response_field_added_is_non_breaking(repo: Repo) -> None:
    """An optional field in a response: non-breaking in the spec and in Python, exit 0."""
    spec = repo.spec()
    schemas(spec)["Me"]["properties"]["nickname"] = {"type": "string", "description": "Shown."}
    repo.write_spec(spec)
    repo.regenerate()  # Me gains an optional attribute: griffe sees no breakage
    result = repo.api_diff()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].startswith("api_diff: v0.1.0 (the latest version tag; ")
    assert section(result.stdout, SPEC) == [
        "  non-breaking (1):",
        "    - GET /api/auth/me: [Added] property `nickname` in Response 200 content "
        "(application/json)",
    ]
    assert section(result.stdout, PYTHON) == ["  no breaking change"]
    assert section(result.stdout, "Verdict:") == [
        "  no breaking change; suggested next version: 0.1.1"
    ]
    entry = result.stdout.split(ENTRY, 1)[1]
    assert "## [0.1.1] - " in entry
    assert "### Added\n\n- `GET /api/auth/me`: [Added] property `nickname` in Response" in entry


def test_request_field_made_required_needs_a_bump_and_an_entry(repo: Repo) -> None:
    """A request field made required fails until the minor version and the changelog say so."""
    spec = repo.spec()
    schemas(spec)["LoginRequest"]["properties"]["otp"] = {"type": "string", "minLength": 1}
    repo.write_spec(spec)
    repo.regenerate()
    repo.set_version("0.1.1")
    repo.add_changelog_entry("0.1.1", "## [0.1.1] - 2026-11-29\n\n### Added\n\n- `otp`.\n")
    repo.commit("login takes an optional one-time code", tag="v0.1.1")

    schemas(spec)["LoginRequest"]["required"].append("otp")
    repo.write_spec(spec)
    repo.regenerate()
    first = repo.api_diff()
    assert first.returncode == 1, first.stdout + first.stderr
    assert first.stdout.splitlines()[0].startswith("api_diff: v0.1.1 (the latest version tag; ")
    assert section(first.stdout, SPEC) == [
        "  breaking: clients written against the base may fail (1):",
        "    - POST /api/auth/login: [Added] required status to `otp` in Request Body content "
        "(application/json)",
    ]
    assert section(first.stdout, PYTHON) == [
        "  breaking (1):",
        "    - nsdk_api.models.login_request.LoginRequest.__init__: "
        "LoginRequest.__init__(otp): Parameter is now required",
    ]
    assert section(first.stdout, "Verdict:") == [
        "  FAIL: breaking changes need a new minor (the major is 0) version: pyproject.toml "
        'says 0.1.1, the base 0.1.1; set version = "0.2.0" (or higher)',
    ]  # CHANGELOG.md has a 0.1.1 section: the version is the one thing missing
    entry = first.stdout.split(ENTRY, 1)[1].strip()
    assert entry.startswith("## [0.2.0] - ")
    assert entry.endswith(
        "### Changed\n\n- **Breaking:** `POST /api/auth/login`: [Added] required status to "
        "`otp` in Request Body content (application/json)"
    )

    repo.set_version("0.2.0")
    bumped = repo.api_diff()
    assert bumped.returncode == 1
    assert section(bumped.stdout, "Verdict:") == [
        "  FAIL: CHANGELOG.md has no entry for 0.2.0: add a section '## [0.2.0] - <date>' "
        "(the entry below is ready to paste)",
    ]

    repo.add_changelog_entry("0.2.0", entry + "\n")  # the report's own entry, pasted
    announced = repo.api_diff()
    assert announced.returncode == 0, announced.stdout
    assert section(announced.stdout, "Verdict:") == [
        "  breaking changes, announced: version 0.2.0 (base 0.1.1) and a changelog entry"
    ]


def test_operation_removed_breaks_the_spec_and_the_python_api(repo: Repo) -> None:
    """Removing logout is breaking twice: the operation in the spec, its module in nsdk_api."""
    spec = repo.spec()
    del spec["paths"]["/api/auth/logout"]
    repo.write_spec(spec)
    repo.regenerate()
    assert not (repo.path / "generated/nsdk_api/api/auth/logout.py").exists()
    result = repo.api_diff()
    assert result.returncode == 1, result.stdout + result.stderr
    assert section(result.stdout, SPEC) == [
        "  breaking: clients written against the base may fail (1):",
        "    - POST /api/auth/logout: [Removed] operation POST /api/auth/logout",
    ]
    assert section(result.stdout, PYTHON) == [
        "  breaking (1):",
        "    - nsdk_api.api.auth.logout: <module>: Public object was removed",
    ]
    assert "### Removed\n\n- **Breaking:** `POST /api/auth/logout`: [Removed] operation" in (
        result.stdout
    )


def test_resend_safe_flip_is_a_behaviour_change(repo: Repo) -> None:
    """x-nsdk-resend-safe true -> false on me: a behaviour change, not breaking, exit 0."""
    spec = repo.spec()
    spec["paths"]["/api/auth/me"]["get"]["x-nsdk-resend-safe"] = False
    repo.write_spec(spec)  # (regenerating would change only the private nsdk_api._operations)
    result = repo.api_diff()
    assert result.returncode == 0, result.stdout + result.stderr
    assert section(result.stdout, SPEC) == [
        "  behaviour: what nsdk does changes (x-nsdk-resend-safe, x-nsdk-role, security) (1):",
        "    - GET /api/auth/me: x-nsdk-resend-safe true -> false: nsdk no longer resends `me` "
        "once its bytes may have reached the server (a dropped connection or a 5xx after "
        "sending now raises instead of being retried)",
    ]
    assert section(result.stdout, PYTHON) == ["  no breaking change"]
    assert "### Changed\n\n- Behaviour: `GET /api/auth/me`: x-nsdk-resend-safe true -> false" in (
        result.stdout
    )


def test_security_added_is_a_breaking_behaviour_change(repo: Repo) -> None:
    """login now requires a bearer token: a behaviour change that also breaks (exit 1)."""
    spec = repo.spec()
    spec["paths"]["/api/auth/login"]["post"]["security"] = [{"bearerAuth": []}]
    repo.write_spec(spec)
    result = repo.api_diff()
    assert result.returncode == 1, result.stdout + result.stderr
    assert section(result.stdout, SPEC) == [
        "  behaviour: what nsdk does changes (x-nsdk-resend-safe, x-nsdk-role, security) (1):",
        "    - POST /api/auth/login: security: now requires a bearer token; nsdk signs it with "
        "the session's token, and calling it without a session raises NotAuthenticatedError "
        "[breaking]",
    ]


def test_renamed_operation_id_is_breaking(repo: Repo) -> None:
    """The generated module and function are named after operationId: renaming one breaks."""
    spec = repo.spec()
    spec["paths"]["/api/auth/me"]["get"]["operationId"] = "whoami"
    repo.write_spec(spec)
    result = repo.api_diff()
    assert result.returncode == 1
    assert section(result.stdout, SPEC) == [
        "  breaking: clients written against the base may fail (1):",
        "    - GET /api/auth/me: operationId 'me' -> 'whoami': the generated module and "
        "function are renamed",
    ]


def test_docstring_only_change_is_no_api_change(repo: Repo) -> None:
    """A reworded summary and docstrings: documentation only, no Python change, no entry."""
    repo.replace(
        "openapi.yaml",
        "summary: Return the signed-in user and tenant.",
        "summary: Return the user and tenant of the signed-in session.",
    )
    repo.replace(
        "overlay/nsdk/_retry.py",
        '"""Count a new attempt and return its number (1-based)."""',
        '"""Count one more attempt; return its number, from 1."""',
    )
    repo.regenerate()  # the summary is the generated module's docstring too
    result = repo.api_diff()
    assert result.returncode == 0, result.stdout + result.stderr
    assert section(result.stdout, SPEC) == [
        "  documentation only: descriptions, summaries, examples (1):",
        "    - GET /api/auth/me: [Replaced] annotation (summary)",
    ]
    assert section(result.stdout, PYTHON) == ["  no breaking change"]
    assert ENTRY not in result.stdout


def test_without_tags_on_main_compares_head_with_the_working_tree(repo: Repo) -> None:
    """A fresh clone of main without tags: HEAD against the working tree, clean: exit 0."""
    git(repo.path, "tag", "-d", "v0.1.0")
    result = repo.api_diff()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].startswith(
        "api_diff: HEAD (no version tag; the merge base with main is HEAD; "
    )
    assert section(result.stdout, SPEC) == ["  none"]
    assert section(result.stdout, "Verdict:") == ["  no API change"]


def test_a_branch_is_compared_with_its_merge_base(repo: Repo) -> None:
    """Without tags, a branch's commits are compared from where it left main."""
    git(repo.path, "tag", "-d", "v0.1.0")
    base = git(repo.path, "rev-parse", "HEAD")
    git(repo.path, "switch", "-q", "-c", "feature")
    spec = repo.spec()
    del spec["paths"]["/api/auth/logout"]
    repo.write_spec(spec)
    repo.commit("drop logout (generated/ left stale on purpose)")
    result = repo.api_diff()
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        f"api_diff: {base[:12]} (no version tag; the merge base with main; {base[:12]}) "
        "-> the working tree"
    )
    assert "POST /api/auth/logout: [Removed] operation POST /api/auth/logout" in result.stdout


def test_unknown_base_is_an_error(repo: Repo) -> None:
    """--base naming no commit: exit 2 with a one-line reason, no report."""
    result = repo.api_diff("--base", "v9.9.9")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().startswith("api_diff: --base 'v9.9.9' names no commit in ")
