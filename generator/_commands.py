"""The command-line facts of each operation, for ``nsdk_api/_commands.py`` (the ``nsdk api`` tree).

From the same ``OperationFacts`` that ``_operations.py`` renders, plus what a command line needs:
the help text (summary, description), one option per parameter (path, query, header) and per
property of a JSON object request body, with its type, whether it is required, its enum values
and whether it is a secret (``format: password``: never an option value, read from a prompt or
stdin), and the response properties to mask in the output. Python names follow
openapi-python-client's rules (``PythonIdentifier``), so the CLI calls the generated functions
with the keyword arguments they declare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openapi_python_client.strings import PythonIdentifier

from . import _spec

#: Option kinds: how the CLI parses a value. ``json`` takes any JSON value (objects, mixed lists).
KINDS = ("string", "integer", "number", "boolean", "array", "json")
_SCALARS = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}


@dataclass(frozen=True)
class OptionFacts:
    """One option of a command: a parameter or a request-body property."""

    flag: str
    name: str
    location: str
    kind: str
    item_kind: str
    required: bool
    choices: tuple[str, ...]
    help: str
    secret: bool


@dataclass(frozen=True)
class CommandFacts:
    """One ``nsdk api`` command: an operation and its options."""

    name: str
    operation: str
    module: str
    role: str
    authenticated: bool
    summary: str
    description: str
    options: tuple[OptionFacts, ...]
    has_body: bool
    body_required: bool
    response_secrets: tuple[str, ...]


def _kebab(name: str) -> str:
    return str(PythonIdentifier(name, prefix="field_")).replace("_", "-").strip("-")


def _type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):  # OpenAPI 3.1: ["string", "null"]
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def _kinds(spec: dict[str, Any], schema: dict[str, Any]) -> tuple[str, str]:
    """(kind, item kind) of a schema: a scalar, an array of scalars, or any JSON value."""
    kind = _type(schema)
    if kind in _SCALARS:
        return _SCALARS[kind], ""
    if kind == "array":
        items = _spec._resolve(spec, schema.get("items", {}))  # noqa: SLF001 (our own module)
        item = _type(items)
        if item in _SCALARS:
            return "array", _SCALARS[item]
    return "json", ""


def _option(
    spec: dict[str, Any],
    where: str,
    name: str,
    python_name: str,
    location: str,
    schema: dict[str, Any],
    required: bool,
    description: str,
) -> OptionFacts:
    schema = _spec._resolve(spec, schema)  # noqa: SLF001 (our own module)
    kind, item_kind = _kinds(spec, schema)
    enum = schema.get("enum") or []
    if kind == "array":
        items = _spec._resolve(spec, schema.get("items", {}))  # noqa: SLF001
        enum = items.get("enum") or []
    if not isinstance(enum, list):
        raise _spec.SpecError(f"{where}: {name}: enum must be a list")
    return OptionFacts(
        flag=f"--{_kebab(name)}",
        name=python_name,
        location=location,
        kind=kind,
        item_kind=item_kind,
        required=required,
        choices=tuple(str(v) for v in enum if v is not None),
        help=" ".join((description or schema.get("description", "")).split()),
        secret=schema.get("format") == "password",
    )


def _parameters(spec: dict[str, Any], path_item: dict[str, Any], raw: dict[str, Any]) -> list[Any]:
    # Path-level parameters apply unless the operation redefines the same (name, in).
    merged: dict[tuple[str, str], Any] = {}
    for param in [*path_item.get("parameters", []), *raw.get("parameters", [])]:
        param = _spec._resolve(spec, param)  # noqa: SLF001
        merged[(param.get("name", ""), param.get("in", ""))] = param
    return list(merged.values())


def _body_schema(spec: dict[str, Any], raw: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    body = _spec._resolve(spec, raw.get("requestBody"))  # noqa: SLF001
    if not body:
        return None, False
    media = body.get("content", {}).get("application/json")
    if media is None:
        return None, False
    return _spec._resolve(spec, media.get("schema", {})), bool(body.get("required"))  # noqa: SLF001


def _response_secrets(spec: dict[str, Any], raw: dict[str, Any]) -> tuple[str, ...]:
    found: set[str] = set()
    for status, response in raw.get("responses", {}).items():
        if not str(status).startswith("2"):
            continue
        response = _spec._resolve(spec, response)  # noqa: SLF001
        media = response.get("content", {}).get("application/json", {})
        schema = _spec._resolve(spec, media.get("schema", {}))  # noqa: SLF001
        for prop, sub in schema.get("properties", {}).items():
            if _spec._resolve(spec, sub).get("format") == "password":  # noqa: SLF001
                found.add(prop)
    return tuple(sorted(found))


def commands(spec: dict[str, Any], ops: list[_spec.OperationFacts]) -> list[CommandFacts]:
    """The ``nsdk api`` command of every operation, in the spec's order."""
    found: list[CommandFacts] = []
    for op in ops:
        where = f"{op.method} {op.path}"
        path_item = spec["paths"][op.path]
        options: list[OptionFacts] = []
        for param in _parameters(spec, path_item, op.raw):
            location = param.get("in")
            if location not in ("path", "query", "header"):
                continue  # cookies: not a command-line concern
            name = param.get("name", "")
            options.append(
                _option(
                    spec,
                    where,
                    name,
                    str(PythonIdentifier(name, prefix="field_")),
                    location,
                    param.get("schema", {}),
                    bool(param.get("required")) or location == "path",
                    param.get("description", ""),
                )
            )
        schema, body_required = _body_schema(spec, op.raw)
        has_body = schema is not None
        if schema is not None and schema.get("properties"):
            required = set(schema.get("required", []))
            for prop, sub in schema["properties"].items():
                options.append(_option(spec, where, prop, prop, "body", sub, prop in required, ""))
        elif schema is not None:  # a body that is not an object with properties: whole JSON
            options.append(
                OptionFacts(
                    flag="--body",
                    name="body",
                    location="body-json",
                    kind="json",
                    item_kind="",
                    required=body_required,
                    choices=(),
                    help="The request body as JSON.",
                    secret=False,
                )
            )
        flags = [o.flag for o in options]
        for flag in flags:
            if flags.count(flag) > 1:
                raise _spec.SpecError(f"{where}: two parameters or body fields give {flag}")
        if op.role == "refresh":
            # The session's own refresh token is the body: `nsdk api refresh` rotates the stored
            # session (client.refresh()); a refresh token typed on a command line is never sent.
            options = [o for o in options if o.location != "body"]
        found.append(
            CommandFacts(
                name=_kebab(op.operation_id),
                operation=op.name,
                module=f"api.{PythonIdentifier(op.tag, prefix='tag')}.{op.name}",
                role=op.role,
                authenticated=op.authenticated,
                summary=" ".join(op.summary.split()),
                description=op.description.strip(),
                options=tuple(options),
                has_body=has_body,
                body_required=body_required,
                response_secrets=_response_secrets(spec, op.raw),
            )
        )
    return found


__all__ = ["KINDS", "CommandFacts", "OptionFacts", "commands"]
