"""The spec-driven documentation: openapi.yaml -> the HTTP reference page, through our Jinja pass.

``render_http_reference(spec)`` returns the Markdown of ``reference/http.md``: every operation
(with the same facts ``nsdk_api/_operations.py`` is generated from), its parameters, request body,
responses and an example, then every schema, header and security scheme. The docs site renders
it at build time (``generator/mkdocs_hook.py``) and ``python -m generator --docs-dest DIR`` writes
it to disk, so the page cannot drift from the spec. To change it, edit openapi.yaml or
``generator/templates/http_reference.md.jinja``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from openapi_python_client.strings import PythonIdentifier

from . import _spec

OWN_TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "http_reference.md.jinja"
#: The pages ``render_docs`` writes, relative to the docs output directory.
HTTP_REFERENCE = "http.md"


@dataclass(frozen=True)
class FieldDoc:
    """One property of a schema, or one parameter of an operation."""

    name: str
    type: str
    required: bool
    description: str


@dataclass(frozen=True)
class SchemaDoc:
    """A named schema from components.schemas."""

    name: str
    anchor: str
    description: str
    fields: tuple[FieldDoc, ...]
    example: str | None


@dataclass(frozen=True)
class ResponseDoc:
    """One documented response of an operation."""

    status: int
    description: str
    schema: str | None
    headers: tuple[str, ...]
    example: str | None


@dataclass(frozen=True)
class OperationDoc:
    """Everything the reference shows for one operation."""

    facts: _spec.OperationFacts
    anchor: str
    module: str
    parameters: tuple[FieldDoc, ...]
    body_schema: str | None
    body_required: bool
    body_example: str | None
    responses: tuple[ResponseDoc, ...]
    curl: str


def _ref_name(node: Any) -> str | None:
    if isinstance(node, dict) and isinstance(node.get("$ref"), str):
        return str(node["$ref"]).rsplit("/", 1)[-1]
    return None


def schema_anchor(name: str) -> str:
    """The in-page anchor of a schema's section."""
    return f"schema-{name.lower()}"


def type_of(spec: dict[str, Any], node: Any) -> str:
    """A short readable type: ``string``, ``string (password)``, ``Me``, ``array of Me``..."""
    name = _ref_name(node)
    if name is not None:
        return name
    if not isinstance(node, dict):
        return "any"
    kind = node.get("type", "object" if "properties" in node else "any")
    if isinstance(kind, list):
        kind = " or ".join(str(k) for k in kind)
    if kind == "array":
        return f"array of {type_of(spec, node.get('items', {}))}"
    fmt = node.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _example(node: Any) -> str | None:
    if not isinstance(node, dict) or "example" not in node:
        return None
    return json.dumps(node["example"], indent=2, ensure_ascii=False)


def _schema_example(spec: dict[str, Any], schema: Any) -> dict[str, Any] | None:
    """An example object built from the schema's property examples (for request bodies)."""
    schema = _spec._resolve(spec, schema)
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    example = {k: v["example"] for k, v in props.items() if isinstance(v, dict) and "example" in v}
    return example or None


def _schemas(spec: dict[str, Any]) -> tuple[SchemaDoc, ...]:
    found = []
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        required = set(schema.get("required", []))
        fields = tuple(
            FieldDoc(
                name=prop,
                type=type_of(spec, node),
                required=prop in required,
                description=str(node.get("description", "")) if isinstance(node, dict) else "",
            )
            for prop, node in schema.get("properties", {}).items()
        )
        example = _schema_example(spec, schema)
        found.append(
            SchemaDoc(
                name=name,
                anchor=schema_anchor(name),
                description=str(schema.get("description", "")),
                fields=fields,
                example=None if example is None else json.dumps(example, indent=2),
            )
        )
    return tuple(found)


def _curl(op: _spec.OperationFacts, example: str | None) -> str:
    url = f'"$NSDK_API_BASE_URL{op.path}"'
    parts = [f"curl -X {op.method} {url}"] if op.method != "GET" else [f"curl {url}"]
    if op.authenticated:
        parts.append('-H "Authorization: Bearer $ACCESS_TOKEN"')
    if example is not None:
        parts.append('-H "Content-Type: application/json"')
        parts.append(f"-d '{json.dumps(json.loads(example))}'")
    return " \\\n  ".join(parts)


def _operation(spec: dict[str, Any], op: _spec.OperationFacts) -> OperationDoc:
    raw = op.raw
    parameters = []
    for param in raw.get("parameters", []):
        param = _spec._resolve(spec, param)
        parameters.append(
            FieldDoc(
                name=f"{param['name']} ({param.get('in', '?')})",
                type=type_of(spec, param.get("schema", {})),
                required=bool(param.get("required", False)),
                description=str(param.get("description", "")),
            )
        )
    body = _spec._resolve(spec, raw.get("requestBody", {}))
    media = body.get("content", {}).get("application/json", {}) if body else {}
    body_schema = type_of(spec, media["schema"]) if "schema" in media else None
    body_example = _example(media)
    if body_example is None and "schema" in media:
        built = _schema_example(spec, media["schema"])
        body_example = None if built is None else json.dumps(built, indent=2)
    responses = []
    for status, response in raw.get("responses", {}).items():
        response = _spec._resolve(spec, response)
        content = response.get("content", {}).get("application/json", {})
        responses.append(
            ResponseDoc(
                status=int(status),
                description=str(response.get("description", "")),
                schema=type_of(spec, content["schema"]) if "schema" in content else None,
                headers=tuple(response.get("headers", {})),
                example=_example(content),
            )
        )
    return OperationDoc(
        facts=op,
        anchor=op.name,
        module=f"nsdk_api.api.{PythonIdentifier(op.tag, prefix='tag_')}.{op.name}",
        parameters=tuple(parameters),
        body_schema=body_schema,
        body_required=bool(body.get("required", False)) if body else False,
        body_example=body_example,
        responses=tuple(sorted(responses, key=lambda r: r.status)),
        curl=_curl(op, body_example),
    )


def cell(text: object) -> str:
    """Text safe in one Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def environment() -> jinja2.Environment:
    """The Jinja environment of our own pass, for ``_operations.py`` and the docs pages."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(OWN_TEMPLATES),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Markdown, not HTML  # noqa: S701
    )
    env.filters["cell"] = cell
    return env


def render_http_reference(spec: dict[str, Any]) -> str:
    """The Markdown of the HTTP reference page for ``spec`` (a loaded openapi.yaml)."""
    ops = _spec.operations(spec)
    components = spec.get("components", {})
    return (
        environment()
        .get_template(TEMPLATE)
        .render(
            info=spec.get("info", {}),
            servers=spec.get("servers", []),
            operations=[_operation(spec, op) for op in ops],
            schemas=_schemas(spec),
            headers=components.get("headers", {}),
            security_schemes=components.get("securitySchemes", {}),
            request_id_header=_spec.request_id_header(spec),
            schema_anchor=schema_anchor,
        )
    )


def render_docs(spec: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the spec-driven pages into ``out_dir``; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / HTTP_REFERENCE
    page.write_text(render_http_reference(spec), encoding="utf-8")
    return [page]


__all__ = [
    "HTTP_REFERENCE",
    "OperationDoc",
    "cell",
    "environment",
    "render_docs",
    "render_http_reference",
    "schema_anchor",
    "type_of",
]
