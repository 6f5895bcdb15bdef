"""Reads openapi.yaml and checks the nsdk conventions the templates rely on.

The templates assume things upstream openapi-python-client does not check: every operation has an
operationId, an ``x-nsdk-role`` and an ``x-nsdk-resend-safe``; every error response uses a schema
with ``detail`` and ``request_id``; every response documents the request-id header. A spec that
breaks one of them fails here, with a message naming the place, instead of generating wrong code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from openapi_python_client.strings import PythonIdentifier

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ROLES = ("login", "refresh", "logout", "call")


class SpecError(Exception):
    """openapi.yaml breaks a convention the generator relies on."""


@dataclass(frozen=True)
class OperationFacts:
    """The per-operation facts emitted into nsdk_api/_operations.py."""

    name: str
    operation_id: str
    tag: str
    method: str
    path: str
    summary: str
    description: str
    authenticated: bool
    resend_safe: bool
    role: str
    success_statuses: tuple[int, ...]
    error_statuses: tuple[int, ...]
    retry_after_statuses: tuple[int, ...]
    raw: dict[str, Any]


def load(path: Path) -> dict[str, Any]:
    """Load the OpenAPI document."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SpecError(f"{path}: not a mapping")
    return data


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise SpecError(f"only local $ref are supported, got {ref!r}")
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def request_id_header(spec: dict[str, Any]) -> str:
    """The request-id header's name: the header component whose name mentions request id."""
    for name in spec.get("components", {}).get("headers", {}):
        if name.lower().replace("-", "").replace("_", "") in ("xrequestid", "requestid"):
            return str(name)
    raise SpecError("components.headers must define the request-id header (e.g. X-Request-ID)")


def operations(spec: dict[str, Any]) -> list[OperationFacts]:
    """Every operation's facts, in path order, after checking the conventions."""
    header = request_id_header(spec)
    global_security = spec.get("security", [])
    found: list[OperationFacts] = []
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            where = f"{method.upper()} {path}"
            op_id = op.get("operationId")
            if not op_id:
                raise SpecError(f"{where}: operationId is required")
            role = op.get("x-nsdk-role", "call")
            if role not in ROLES:
                raise SpecError(f"{where}: x-nsdk-role must be one of {ROLES}, got {role!r}")
            resend_safe = op.get("x-nsdk-resend-safe")
            if not isinstance(resend_safe, bool):
                raise SpecError(f"{where}: x-nsdk-resend-safe must be true or false")
            security = op.get("security", global_security)
            success: list[int] = []
            errors: list[int] = []
            retry_after: list[int] = []
            for status, response in op.get("responses", {}).items():
                response = _resolve(spec, response)
                if not str(status).isdigit():
                    raise SpecError(f"{where}: only explicit status codes are supported ({status})")
                code = int(status)
                headers = response.get("headers", {})
                if header not in headers:
                    raise SpecError(f"{where} {code}: the {header} response header is missing")
                if "Retry-After" in headers:
                    retry_after.append(code)
                if code >= 400:
                    errors.append(code)
                    schema = _resolve(
                        spec,
                        response.get("content", {}).get("application/json", {}).get("schema", {}),
                    )
                    props = schema.get("properties", {})
                    if "detail" not in props or "request_id" not in props:
                        raise SpecError(f"{where} {code}: error schema needs detail and request_id")
                else:
                    success.append(code)
            found.append(
                OperationFacts(
                    name=str(PythonIdentifier(op_id, prefix="field_")),
                    operation_id=op_id,
                    tag=(op.get("tags") or ["default"])[0],
                    method=method.upper(),
                    path=path,
                    summary=op.get("summary", ""),
                    description=op.get("description", ""),
                    authenticated=bool(security) and any(bool(s) for s in security),
                    resend_safe=resend_safe,
                    role=role,
                    success_statuses=tuple(sorted(success)),
                    error_statuses=tuple(sorted(errors)),
                    retry_after_statuses=tuple(sorted(retry_after)),
                    raw=op,
                )
            )
    roles = [op.role for op in found]
    for single in ("login", "refresh", "logout"):
        if roles.count(single) > 1:
            raise SpecError(f"at most one operation may have x-nsdk-role: {single}")
    return found
