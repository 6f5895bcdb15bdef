"""Figure 5: generation. The time of ``nox -s generate``'s generator step (``python -m generator``,
here with ``--dest`` into a temporary directory so the tree is left alone), and proof that runs
are byte-identical: every file of every run hashed and compared, and compared with the committed
``generated/nsdk_api`` too. The baseline is OpenAPI Generator's ``python`` generator on the same
``openapi.yaml`` (timed by figure 2, or here when figure 2 did not run).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, Row, Stat


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path (bytecode caches excluded)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def generate(dest: Path) -> float:
    """Run the generator step into dest; return its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "generator", "--dest", str(dest)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start


def run(quick: bool = False, context: dict[str, Any] | None = None, **_: Any) -> list[Row]:
    """Figure 5: n generator runs, their times, and whether all outputs are byte-identical."""
    context = context if context is not None else {}
    runs = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="nsdk-bench-gen-") as tmp:
        times, digests = [], []
        for i in range(runs):
            dest = Path(tmp) / f"run{i}" / "nsdk_api"
            times.append(generate(dest))
            digests.append(tree_digest(dest))
        oag_seconds = context.get("oag_generate_seconds")
        reason = context.get("oag_reason", "")
        if "oag_generate_seconds" not in context:
            from imports import generate_oag

            _, reason, oag_seconds = generate_oag(Path(tmp) / "oag")
    committed = tree_digest(ROOT / "generated" / "nsdk_api")
    identical = all(d == digests[0] for d in digests[1:])
    combined = hashlib.sha256(repr(sorted(digests[0].items())).encode()).hexdigest()[:16]
    timing = Row(
        figure="5 generation: generator step (python -m generator)",
        unit="s",
        nsdk=Stat.of(times),
        extra={"seconds": times},
    )
    if oag_seconds is not None:
        timing.baseline = Stat.of([oag_seconds])
        timing.baseline_name = "OpenAPI Generator python"
        timing.ratio = Stat.of([t / oag_seconds for t in times])
        timing.note = "OpenAPI Generator timed once (one JVM start included)"
    else:
        timing.note = f"OpenAPI Generator not measured: {reason}"
    same = Row(
        figure=f"5 generation: {runs} runs byte-identical",
        target="identical",
        extra={"files": digests[0], "matches_committed": digests[0] == committed},
    ).judge(identical)
    same.note = (
        f"{len(digests[0])} files, tree sha256 {combined}; "
        f"{'identical to' if digests[0] == committed else 'DIFFERS from'} committed generated/"
    )
    return [timing, same]
