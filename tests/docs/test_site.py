"""The documentation site: it builds with --strict and covers every operation and public name."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import tarfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nsdk
import pytest
import yaml
from _docs_site import BuiltSite, mermaid_pin
from nsdk_api._operations import OPERATIONS

pytest.importorskip("mkdocs", reason="the docs dependency group (mkdocs) is not installed")

BUILD_BUDGET = 30.0  # seconds: the docs build must stay cheap enough to run in every test run
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def site(built_site: BuiltSite) -> Path:
    """The site as `nox -s docs` builds it (built once per session, shared with tests/browser)."""
    return built_site.path


def test_build_stays_within_budget(built_site: BuiltSite) -> None:
    """The strict build is cheap enough to run in every test run."""
    assert built_site.seconds < BUILD_BUDGET, f"the docs build took {built_site.seconds:.1f}s"


def page(site: Path, name: str) -> str:
    """The HTML of a built page (``reference/http`` -> ``reference/http/index.html``)."""
    return (site / name / "index.html").read_text(encoding="utf-8")


def text_of(markup: str) -> str:
    """The visible text of an HTML page, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def spec_operations(repo_root: Path) -> list[dict[str, Any]]:
    """Every operation in openapi.yaml, read without the generator."""
    spec = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    found = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                found.append({"method": method.upper(), "path": path, **item[method]})
    return found


def test_strict_build_produces_every_page(site: Path) -> None:
    """`mkdocs build --strict` passes and produces the pages the nav promises."""
    for name in (
        "",
        "quickstart",
        "auth-flow",
        "errors-and-retries",
        "configuration",
        "regenerating",
        "api-explorer",
        "reference/nsdk",
        "reference/nsdk_api",
        "reference/http",
    ):
        assert (site / name / "index.html").is_file(), name


def test_every_operation_is_in_the_http_reference(site: Path, repo_root: Path) -> None:
    """Each operation of openapi.yaml has its section, method, path and summary on the HTTP page."""
    http = page(site, "reference/http")
    text = text_of(http)
    operations = spec_operations(repo_root)
    assert operations
    for op in operations:
        name = next(o.name for o in OPERATIONS.values() if o.operation_id == op["operationId"])
        assert f'id="{name}"' in http, op["operationId"]
        assert f"{op['method']} {op['path']}" in text, op["operationId"]
        assert " ".join(op["summary"].split()) in text, op["operationId"]


def test_every_operation_is_in_the_python_reference(site: Path, repo_root: Path) -> None:
    """Each operation's generated module is rendered in the nsdk_api reference."""
    api = page(site, "reference/nsdk_api")
    for op in spec_operations(repo_root):
        module = next(o.name for o in OPERATIONS.values() if o.operation_id == op["operationId"])
        tag = op.get("tags", ["default"])[0]
        assert f'id="nsdk_api.api.{tag}.{module}"' in api, op["operationId"]
        assert f'id="nsdk_api.api.{tag}.{module}.sync"' in api, op["operationId"]


@pytest.mark.parametrize("name", nsdk.__all__)
def test_every_public_name_is_in_the_api_reference(site: Path, name: str) -> None:
    """Each name in nsdk.__all__ has its own entry in the nsdk reference."""
    assert f'id="nsdk.{name}"' in page(site, "reference/nsdk"), name


def test_every_exception_is_in_the_errors_page(site: Path) -> None:
    """The errors page's tree and table mention every exception nsdk exports."""
    text = text_of(page(site, "errors-and-retries"))
    exceptions = [
        name
        for name in nsdk.__all__
        if isinstance(getattr(nsdk, name), type) and issubclass(getattr(nsdk, name), Exception)
    ]
    assert "NsdkError" in exceptions
    missing = [name for name in exceptions if name not in text]
    assert not missing, f"not on the errors page: {missing}"


def test_errors_page_tree_is_the_one_in_the_code(repo_root: Path) -> None:
    """The exception tree on the errors page is exactly the one drawn in nsdk._errors."""
    import nsdk._errors

    doc = nsdk._errors.__doc__ or ""
    tree = [
        line.strip("\n")[4:]
        for line in doc.splitlines()
        if line.startswith("    ") and ("── " in line or line.strip().startswith("NsdkError"))
    ]
    assert tree and tree[0].startswith("NsdkError")
    source = (repo_root / "docs" / "errors-and-retries.md").read_text(encoding="utf-8")
    block = "```text\n" + "\n".join(tree) + "\n```"
    assert block in source, "copy the tree from overlay/nsdk/_errors.py into the errors page"


def test_diagrams_are_mermaid_blocks(site: Path) -> None:
    """The auth-flow page carries its sequence diagrams as mermaid blocks the theme renders."""
    auth = page(site, "auth-flow")
    assert auth.count('class="mermaid"') >= 3
    assert auth.count("sequenceDiagram") >= 3


class _Loads(HTMLParser):
    """Collects what an HTML page makes the browser load: scripts, styles, images, frames..."""

    LOADING = frozenset(
        {
            ("script", "src"),
            ("img", "src"),
            ("iframe", "src"),
            ("source", "src"),
            ("video", "src"),
            ("audio", "src"),
            ("embed", "src"),
            ("object", "data"),
            ("img", "srcset"),
        }
    )

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in values.items():
            if value and (tag, name) in self.LOADING:
                self.urls.append(value)
        rel = (values.get("rel") or "").lower().split()
        if tag == "link" and values.get("href") and not {"canonical", "alternate"} & set(rel):
            self.urls.append(values["href"] or "")


def is_foreign(url: str) -> bool:
    """A URL the browser would fetch from another host (absolute or protocol-relative)."""
    parts = urlsplit(url.strip())
    return bool(parts.netloc) or parts.scheme not in ("", "data", "blob")


def test_nothing_is_loaded_from_another_host(site: Path) -> None:
    """No page, iframe document or stylesheet of the build loads anything from another host."""
    foreign: dict[str, list[str]] = {}
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 12
    for page_path in pages:
        parser = _Loads()
        parser.feed(page_path.read_text(encoding="utf-8"))
        assert parser.urls, page_path  # every page loads its scripts and styles: seen here
        bad = [url for url in parser.urls if is_foreign(url)]
        if bad:
            foreign[str(page_path.relative_to(site))] = bad
    for css in sorted(site.rglob("*.css")):
        text = css.read_text(encoding="utf-8")
        bad = re.findall(r"(?:@import\s+|url\(\s*)[\"']?((?:https?:)?//[^\"')\s]+)", text)
        if bad:
            foreign[str(css.relative_to(site))] = bad
    assert not foreign, json.dumps(foreign, indent=2)


def test_site_mermaid_is_the_pinned_npm_package_material_expects(
    site: Path, repo_root: Path
) -> None:
    """The site's own mermaid is the pinned npm package's, integrity-checked, of Material's major.

    The build copies dist/mermaid.min.js (and LICENSE) from the tarball the nox session fetched
    (`python -m generator.mermaid`); checked here against the tarball, whose sha512 must be the
    pinned npm integrity.
    """
    pin = mermaid_pin(repo_root)
    bundle = next(site.glob("assets/javascripts/bundle.*.min.js")).read_text(encoding="utf-8")
    wanted = re.findall(r"mermaid@(\d+)/dist/mermaid\.min\.js", bundle)
    assert wanted, "Material no longer names the mermaid it loads: check how it finds mermaid"
    assert pin.VERSION.split(".")[0] == wanted[0], f"Material expects mermaid@{wanted[0]}"

    tarball = (pin.CACHE / pin.TARBALL).read_bytes()
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode("ascii")
    assert f"sha512-{digest}" == pin.INTEGRITY
    packed: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name in ("package/dist/mermaid.min.js", "package/LICENSE"):
            stream = archive.extractfile(name)
            assert stream is not None, name
            packed[name] = stream.read()
    built = (site / "assets/mermaid/mermaid.min.js").read_bytes()
    assert built == packed["package/dist/mermaid.min.js"]
    assert (site / "assets/mermaid/LICENSE").read_bytes() == packed["package/LICENSE"]
    assert b"MIT License" in packed["package/LICENSE"]
    version = re.search(rb'\{version:"(\d+\.\d+\.\d+)"\}', built)  # mermaid's own
    assert version is not None and version.group(1).decode() == pin.VERSION
    assert 'src="../assets/mermaid/mermaid.min.js"' in page(site, "auth-flow")


def test_explorer_page_loads_the_spec_from_the_build(site: Path, repo_root: Path) -> None:
    """The API Explorer's iframe loads api-explorer/openapi.json: the spec, local server first."""
    explorer = page(site, "api-explorer")
    frames = re.findall(r'<iframe [^>]*class="swagger-ui-iframe"[^>]*>', explorer)
    assert len(frames) == 1
    src = re.search(r'src="(swagger-[0-9a-f]+\.html)"', frames[0])
    assert src is not None
    document = (site / "api-explorer" / src.group(1)).read_text(encoding="utf-8")
    assert 'var url = "openapi.json";' in document
    assert '"validatorUrl": "none"' in document  # no online validator badge
    explorer_spec = json.loads((site / "api-explorer" / "openapi.json").read_text("utf-8"))
    spec = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    assert explorer_spec["servers"][0]["url"] == "http://{host}:{port}"
    assert explorer_spec["servers"][0]["variables"]["port"]["default"] == "8000"
    assert explorer_spec["servers"][1:] == spec["servers"]
    assert {k: v for k, v in explorer_spec.items() if k != "servers"} == {
        k: v for k, v in json.loads(json.dumps(spec, default=str)).items() if k != "servers"
    }
