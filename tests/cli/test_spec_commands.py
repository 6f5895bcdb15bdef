"""`nsdk api` comes from openapi.yaml: every operation is a command, a new one after regenerating.

The temp-spec test adds an operation to a copy of openapi.yaml, regenerates into a temp dir and
runs the installed CLI against that package (``PYTHONPATH``): the new operation is a command with
its parameters and body fields as options, and sends exactly the request the spec describes to a
loopback HTTP server that records it. Nothing but the spec changed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import yaml

if TYPE_CHECKING:
    from conftest import Home  # tests/cli/conftest.py

REFS = {"400": "BadRequest", "500": "InternalError"}


def _kebab(operation_id: str) -> str:
    out = "".join(f"-{c.lower()}" if c.isupper() else c for c in operation_id)
    return out.replace("_", "-").strip("-")


def test_every_operation_is_a_command(home: Home, repo_root: Path) -> None:
    """`nsdk api --help` lists one command per operation of openapi.yaml, with its summary."""
    spec = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    listed = home.run("api", "--help")
    assert listed.code == 0
    commands = listed.out.split("Commands:", 1)[1]
    names = [line.split()[0] for line in commands.strip().splitlines()]
    ops = [op for item in spec["paths"].values() for op in item.values() if "operationId" in op]
    assert sorted(names) == sorted(_kebab(op["operationId"]) for op in ops)
    for op in ops:
        assert op["summary"] in home.run("api", _kebab(op["operationId"]), "--help").out


def _add_update_widget(spec: dict[str, Any]) -> None:
    """PUT /api/widgets/{widgetId}?mode=&dryRun=, a JSON body with a secret, a new response."""
    spec["paths"]["/api/widgets/{widgetId}"] = {
        "put": {
            "tags": ["widgets"],
            "operationId": "updateWidget",
            "summary": "Update a widget (zebra-4711 marker).",
            "description": "Renames a widget and sets its count, tags and pin.",
            "security": [],
            "x-nsdk-role": "call",
            "x-nsdk-resend-safe": True,
            "parameters": [
                {
                    "name": "widgetId",
                    "in": "path",
                    "required": True,
                    "description": "The widget to update.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "mode",
                    "in": "query",
                    "description": "How carefully.",
                    "schema": {"type": "string", "enum": ["fast", "careful"]},
                },
                {"name": "dryRun", "in": "query", "schema": {"type": "boolean"}},
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/WidgetUpdate"}}
                },
            },
            "responses": {
                "200": {
                    "description": "The updated widget.",
                    "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}
                    },
                },
                **{code: {"$ref": f"#/components/responses/{name}"} for code, name in REFS.items()},
            },
        }
    }
    spec["components"]["schemas"]["WidgetUpdate"] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "description": "The new name."},
            "count": {"type": "integer", "description": "How many."},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "Labels."},
            "pin": {"type": "string", "format": "password", "description": "The widget's PIN."},
        },
    }
    spec["components"]["schemas"]["Widget"] = {
        "type": "object",
        "required": ["id", "name", "pin"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "count": {"type": "integer"},
            "pin": {"type": "string", "format": "password"},
        },
    }


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]]  # set per server by the fixture

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        self.seen.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        answer = json.dumps({"id": "w1", "name": body["name"], "count": 3, "pin": body["pin"]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Request-ID", "req_widget1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback HTTP server recording each PUT; yields (base URL, the requests)."""
    seen: list[dict[str, Any]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_operation_added_to_the_spec_is_a_command_after_regenerating(
    home: Home,
    repo_root: Path,
    tmp_path: Path,
    generator_cli: Callable[..., Any],
    recorder: tuple[str, list[dict[str, Any]]],
) -> None:
    """A new operation in openapi.yaml: a command with typed options, sending the spec's request."""
    spec = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    _add_update_widget(spec)
    spec_path = tmp_path / "openapi.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    generated = tmp_path / "gen"
    result = generator_cli("--spec", str(spec_path), "--dest", str(generated / "nsdk_api"))
    assert result.returncode == 0, result.stdout + result.stderr
    env = {**home.env, "PYTHONPATH": str(generated)}

    listed = home.run("api", "--help", env=env)
    assert "update-widget" in listed.out and "zebra-4711" in listed.out
    helped = home.run("api", "update-widget", "--help", env=env)
    assert helped.code == 0
    for text in (
        "--widget-id TEXT",
        "The widget to update. [path parameter]",
        "--mode [fast|careful]",
        "--dry-run / --no-dry-run",
        "--name TEXT",
        "--count INTEGER",
        "--tags TEXT",
        "--pin-stdin",
        "Renames a widget",
    ):
        assert text in helped.out, text
    assert "--pin " not in helped.out  # a secret is never an option value

    base_url, seen = recorder
    missing = home.run("--base-url", base_url, "api", "update-widget", "--widget-id", "w1", env=env)
    assert missing.code == 2 and "--name" in missing.err
    bad = home.run(
        "--base-url", base_url, "api", "update-widget", "--widget-id", "w1", "--name", "n",
        "--mode", "reckless", env=env,
    )  # fmt: skip
    assert bad.code == 2 and "reckless" in bad.err
    assert seen == []

    called = home.run(
        "--base-url", base_url, "api", "update-widget", "--widget-id", "w 1", "--mode", "careful",
        "--dry-run", "--name", "Widget", "--count", "3", "--tags", "a", "--tags", "b",
        "--pin-stdin", stdin="4711-pin\n", env=env,
    )  # fmt: skip
    assert called.code == 0, called
    assert json.loads(called.out) == {"id": "w1", "name": "Widget", "count": 3, "pin": "***"}
    assert seen == [
        {
            "path": "/api/widgets/w%201?mode=careful&dryRun=true",
            "body": {"name": "Widget", "count": 3, "tags": ["a", "b"], "pin": "4711-pin"},
            "auth": None,
        }
    ]
    assert "4711-pin" not in called.out + called.err
