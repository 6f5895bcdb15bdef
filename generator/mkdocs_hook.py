"""mkdocs hook: render the HTTP reference from openapi.yaml into the site at every build.

Declared in mkdocs.yml (``hooks:``). The page ``reference/http.md`` exists only in the build,
rendered by ``generator._docs`` through ``generator/templates/http_reference.md.jinja``: it is
never committed, so it cannot drift from the spec. ``mkdocs serve`` re-renders it when
openapi.yaml or the template changes.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
# mkdocs loads a hook by file path, not as part of its package: make `generator` importable.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from generator import _docs, _spec  # noqa: E402 - needs the sys.path entry above

SPEC = ROOT / "openapi.yaml"
PAGE = "reference/http.md"
log = logging.getLogger("mkdocs.hooks.nsdk")


def on_files(files: Files, config: Any) -> Files:
    """Add the rendered HTTP reference to the site's files (replacing any file on disk)."""
    existing = files.get_file_from_path(PAGE)
    if existing is not None:
        log.info("%s is generated from openapi.yaml; ignoring the file on disk", PAGE)
        files.remove(existing)
    content = _docs.render_http_reference(_spec.load(SPEC))
    files.append(File.generated(config, PAGE, content=content))
    return files


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    """Rebuild when the spec or the template changes (``mkdocs serve``)."""
    server.watch(str(SPEC))
    server.watch(str(_docs.OWN_TEMPLATES / _docs.TEMPLATE))
    return server
