"""mkdocs hook: the HTTP reference and the API Explorer's spec, from openapi.yaml at each build.

Declared in mkdocs.yml (``hooks:``). Both exist only in the build, never committed, so neither can
drift from the spec:

- ``reference/http.md``, rendered by ``generator._docs`` through
  ``generator/templates/http_reference.md.jinja``;
- ``api-explorer/openapi.json``, the spec as JSON for the API Explorer page
  (``docs/api-explorer.md``, Swagger UI from mkdocs-swagger-ui-tag), with one server added in
  front of the spec's own: the reference server on this machine (``http://{host}:{port}``,
  ``127.0.0.1:8000`` by default, both editable in the explorer), which ``nox -s explore`` starts.

The spec is the ``openapi.yaml`` next to the mkdocs.yml being built. ``mkdocs serve`` re-renders
both when openapi.yaml or the template changes.

It also puts the site's own mermaid into the build, when mkdocs.yml's ``extra_javascript`` names
it (``assets/mermaid/mermaid.min.js``, with its ``LICENSE`` beside it): the copy of the pinned npm
package that ``python -m generator.mermaid`` fetched and checked (``generator/mermaid.py``). The
hook only reads that cache; without it the build fails saying to run that command.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
# mkdocs loads a hook by file path, not as part of its package: make `generator` importable.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from generator import _docs, _spec, mermaid  # noqa: E402 - needs the sys.path entry above

SPEC_NAME = "openapi.yaml"
PAGE = "reference/http.md"
EXPLORER_SPEC = "api-explorer/openapi.json"
MERMAID_JS = "assets/mermaid/mermaid.min.js"
MERMAID_LICENSE = "assets/mermaid/LICENSE"
# The first server of the explorer's spec, so "Try it out" goes to a local reference server by
# default (`nox -s explore`: the server on 127.0.0.1:8000, the site on 127.0.0.1:8001).
LOCAL_SERVER: dict[str, Any] = {
    "url": "http://{host}:{port}",
    "description": "Reference server on this machine (nox -s explore)",
    "variables": {
        "host": {"default": "127.0.0.1", "enum": ["127.0.0.1", "localhost"]},
        "port": {"default": "8000"},
    },
}
log = logging.getLogger("mkdocs.hooks.nsdk")


def spec_path(config: Any) -> Path:
    """The openapi.yaml next to the mkdocs.yml being built."""
    return Path(config.config_file_path).resolve().parent / SPEC_NAME


def explorer_spec(spec: dict[str, Any]) -> str:
    """The spec as the API Explorer loads it: JSON, with the local reference server first."""
    data = copy.deepcopy(spec)
    data["servers"] = [LOCAL_SERVER, *data.get("servers", [])]
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"


def on_files(files: Files, config: Any) -> Files:
    """Add the HTTP reference and the explorer's spec (replacing any file on disk), and mermaid."""
    spec = _spec.load(spec_path(config))
    for path, content in (
        (PAGE, _docs.render_http_reference(spec)),
        (EXPLORER_SPEC, explorer_spec(spec)),
    ):
        existing = files.get_file_from_path(path)
        if existing is not None:
            log.info("%s is generated from openapi.yaml; ignoring the file on disk", path)
            files.remove(existing)
        files.append(File.generated(config, path, content=content))
    scripts = [str(getattr(script, "path", script)) for script in config.extra_javascript]
    if MERMAID_JS in scripts:
        try:
            cached = mermaid.require()
        except mermaid.MermaidError as error:
            raise PluginError(str(error)) from None
        for path, source in ((MERMAID_JS, cached.script), (MERMAID_LICENSE, cached.license)):
            files.append(File.generated(config, path, abs_src_path=str(source)))
    return files


# mkdocs-swagger-ui-tag's iframe meets the page through two things the page defines only once
# Material's bundle has loaded and run (its document$). When Swagger UI loads first (a fast load,
# or a slow bundle):
# - the iframe's resize call fails ("parent.update_swagger_ui_iframe_height is not a function", a
#   console error, the frame left short). The same function, defined in <head> before the iframe
#   exists, closes that window; the plugin's later definition replaces it with the same behaviour.
# - the iframe reads the page's scheme (parent.__init_is_dark_mode) once, at its load, before the
#   page has set it: the explorer stays light on a dark page. So once the page has run, and again
#   at each explorer iframe's load, every explorer is put on the page's current scheme (later
#   toggles are the plugin's own: it watches data-md-color-scheme).
EXPLORER_HEAD_SCRIPT = """<script>
window.update_swagger_ui_iframe_height = function (id) {
  var frame = document.getElementById(id);
  if (frame && frame.contentWindow && frame.contentWindow.document.body) {
    var height = frame.contentWindow.document.body.scrollHeight + 80 + "px";
    frame.height = height;
    frame.style.height = height;
  }
};
document.addEventListener("DOMContentLoaded", function () {
  var frames = document.querySelectorAll("iframe.swagger-ui-iframe");
  function followScheme() {
    var dark = document.body.getAttribute("data-md-color-scheme") === "slate";
    frames.forEach(function (frame) {
      var explorer = frame.contentWindow;
      if (explorer && typeof explorer.enable_dark_mode === "function") {
        if (dark) {
          explorer.enable_dark_mode();
        } else {
          explorer.disable_dark_mode();
        }
      }
    });
  }
  frames.forEach(function (frame) {
    frame.addEventListener("load", followScheme);
  });
  if (typeof document$ !== "undefined") {  // Material's bundle ran
    document$.subscribe(followScheme);
  }
});
</script>
"""


def on_post_page(output: str, page: Any, config: Any) -> str:
    """On the API Explorer page, let the iframe load before or after the page's own scripts."""
    if 'class="swagger-ui-iframe"' in output and "</head>" in output:
        output = output.replace("</head>", EXPLORER_HEAD_SCRIPT + "</head>", 1)
    return output


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    """Rebuild when the spec or the template changes (``mkdocs serve``)."""
    server.watch(str(spec_path(config)))
    server.watch(str(_docs.OWN_TEMPLATES / _docs.TEMPLATE))
    return server
