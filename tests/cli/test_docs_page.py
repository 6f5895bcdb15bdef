"""docs/cli.md's reference is rendered from the commands themselves (mkdocs-click): current.

The page's Markdown goes through the same markdown extension the site build uses, in a child
process (importing ``nsdk.cli`` here would add it to ``nsdk``'s namespace for the other tests):
every command, every ``nsdk api`` operation and their options appear, as ``--help`` says them.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from conftest import Home  # tests/cli/conftest.py

RENDER = """
import sys, markdown
text = open(sys.argv[1], encoding="utf-8").read()
sys.stdout.write(markdown.markdown(text, extensions=["mkdocs-click", "tables", "attr_list"]))
"""


def test_reference_is_generated_from_the_commands(home: Home, repo_root: Path) -> None:
    """Each command and API operation on the page, with the options its --help lists."""
    page = repo_root / "docs" / "cli.md"
    assert "::: mkdocs-click" in page.read_text(encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-c", RENDER, str(page)],
        env=home.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    text = html.unescape(re.sub(r"<[^>]+>", "", run.stdout))
    assert "::: mkdocs-click" not in text
    for command in ("login", "status", "me", "token", "logout", "api"):
        summary = home.run(command, "--help").out.split("\n\n")[1].strip().split("\n")[0]
        assert summary.replace("`", "") in text, command
    assert "--password-stdin" in text and "--profile NAME" in text
    spec = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    for item in spec["paths"].values():
        for op in item.values():
            assert f"nsdk api {op['operationId']}" in text
            assert op["summary"] in text
    assert "Sentinel" not in text and "UNSET" not in text
