"""Mutation testing of the overlay's decision cores and store code (``nox -s mutation``).

mutmut 3 (https://github.com/boxed/mutmut) makes small changes to the code (a flipped comparison,
a changed constant, a deleted call, a function returning None), one mutant at a time, and runs
the tests that reach the changed function; a mutant no test notices "survives".

Phase 1 runs the fast unit tests (``FAST_TESTS``) through mutmut. Phase 2 runs
``tests/reliability -m "not slow"`` (real HTTP on loopback against the reference server) once
per phase-1 survivor, with the survivor switched on; a reliability test that fails counts as a
kill only if it then passes with no mutant, in the same run (else it is reported as flaky and
the mutant stays a survivor). The report prints, per module, the mutants, how many each phase
killed, how many are marked equivalent (``# pragma: no mutate`` on their line: those mutants
are not generated, and are counted here by generating the module once more without its
pragmas), the survivors and the score (killed / non-equivalent mutants), then every survivor
as ``file:line`` with the line before and after.

mutmut derives a module's name from its path, so the sources are staged as ``src/nsdk`` and
``src/nsdk_api`` in ``.mutation/`` (git-ignored) with a copy of the tests and of pyproject.toml
(plus the ``[tool.mutmut]`` table below); mutmut copies that again into ``.mutation/mutants/``
and puts ``mutants/src`` first on ``sys.path``. The venv must have no installed ``nsdk``: the
tests then import the mutated copy (checked below, and by mutmut's own forced-failure run).

Usage (from the nox session, whose venv has mutmut, the test tools and the reference server)::

    python mutation/run.py                 # all modules, both phases
    python mutation/run.py _transport      # one module (a name, with or without .py)
    python mutation/run.py --fast-only     # phase 1 only
    python mutation/run.py --fail-under 95 # exit 1 if a decision core scores below 95 %
    python mutation/run.py --cached        # reuse the last run: only changed functions and
                                           # the mutants not killed are tested again
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / ".mutation"

#: The decision cores (the 95 % goal applies to these) and the store/coordination code.
CORES = ("_retry.py", "_session.py", "_auth.py", "_transport.py")
STORES = ("_refresh.py", "_stores.py", "_tokens.py")

#: Mutants that change nothing observable, each with the reason: matched by module, function
#: and the line before and after (not by mutmut's numbering, which shifts with every edit).
EQUIVALENT = Path(__file__).with_name("equivalent.toml")

#: Phase 1: the unit tests (MockTransport, injected clocks and sleeps), in-process.
FAST_TESTS = ("tests/overlay",)
#: Phase 2, per phase-1 survivor: real HTTP against the reference server on loopback.
SLOW_TESTS = ("tests/reliability", "-m", "not slow")
PYTEST_ARGS = (
    "--import-mode=importlib",
    "-p",
    "no:cacheprovider",
    # The public surface rather than the decisions (names, docs examples against a server, a
    # regenerated client, imports in fresh interpreters): slow, and every surviving mutant they
    # reach would pay for them.
    "--ignore=tests/overlay/test_surface.py",
    "--ignore=tests/overlay/test_exported_members.py",
    "--ignore=tests/overlay/test_lazy_import.py",
)

#: The only entry on PYTHONPATH, for the child processes some tests start (``python -c``) and
#: for phase 2: it puts the mutants first on ``sys.path`` (once mutmut has made them: a path
#: missing when the interpreter starts would stay cached as missing), and keeps children from
#: recording mutmut's coverage statistics, which only the pytest process collects (and whose
#: config they would look for in their own working directory).
SITECUSTOMIZE = """\
import os
import sys

_src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mutants", "src")
if os.path.isdir(_src) and _src not in sys.path:
    sys.path.insert(0, _src)
if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    del os.environ["MUTANT_UNDER_TEST"]
"""

#: A pytest plugin (``-p nsdk_mutation_stats``, from the same directory) for phase 2: one run of
#: the reliability tests with mutmut's trampolines in "stats" mode records which tests reach
#: each mutated function, so each survivor is then run against those tests only.
STATS_PLUGIN = """\
import json
import os

from mutmut.mutation.trampoline import set_mutant_under_test
from mutmut.state import state


class _Reached:
    def __init__(self, out):
        self.out = out
        self.tests = {}

    def pytest_runtest_setup(self, item):
        state()._stats.clear()

    def pytest_runtest_teardown(self, item, nextitem):
        for function in state()._stats:
            self.tests.setdefault(function, []).append(item.nodeid)
        state()._stats.clear()

    def pytest_sessionfinish(self, session):
        with open(self.out, "w", encoding="utf-8") as f:
            json.dump(self.tests, f)


def pytest_configure(config):
    out = os.environ.get("NSDK_MUTATION_REACHED")
    if out:
        set_mutant_under_test("stats")
        config.pluginmanager.register(_Reached(out), "nsdk_mutation_reached")
"""

MUTMUT_CONFIG = """
[tool.mutmut]
source_paths = ["src/nsdk"]
also_copy = ["src/nsdk_api"]
only_mutate = {only}
pytest_add_cli_args = {pytest_args}
pytest_add_cli_args_test_selection = {tests}
# A mutant whose tests run 5 times longer than without it (plus 2 s) hangs: counted as killed.
timeout_multiplier = 5.0
timeout_constant = 2.0
"""


@dataclass
class Module:
    """One mutated module's figures."""

    name: str
    generated: int = 0  # what mutmut made (lines marked `# pragma: no mutate` make none)
    pragma: int = 0  # what those lines would have made
    killed_fast: int = 0
    killed_slow: int = 0
    listed: list[Change] = field(default_factory=list["Change"])  # EQUIVALENT entries matched
    survivors: list[Change] = field(default_factory=list["Change"])
    other: dict[str, int] = field(default_factory=dict[str, int])

    @property
    def mutants(self) -> int:
        """Every mutant of the module, the equivalent ones included."""
        return self.generated + self.pragma

    @property
    def equivalent(self) -> int:
        """Mutants marked equivalent: by a pragma on their line, or listed in EQUIVALENT."""
        return self.pragma + len(self.listed)

    @property
    def score(self) -> float:
        """Killed share of the mutants that are not equivalent, in percent."""
        killable = self.mutants - self.equivalent
        return 100.0 * (self.killed_fast + self.killed_slow) / killable if killable else 100.0


@dataclass(frozen=True)
class Change:
    """Where a mutant is and what it changes."""

    name: str  # mutmut's: nsdk.<module>.<mangled function>__mutmut_<n>
    module: str
    function: str  # Class.method or function
    line: int
    before: str
    after: str

    def __str__(self) -> str:
        return f"overlay/nsdk/{self.module}:{self.line}: {self.before}  ->  {self.after}"


def _write_site() -> None:
    (STAGE / "site").mkdir(exist_ok=True)
    (STAGE / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    (STAGE / "site" / "nsdk_mutation_stats.py").write_text(STATS_PLUGIN, encoding="utf-8")


def _stage(modules: list[str], *, keep: bool = False) -> None:
    """Lay out .mutation/: src/nsdk, src/nsdk_api, tests/, pyproject.toml with [tool.mutmut].

    ``keep``: over the last run's layout, keeping ``mutants/`` (mutmut's mutants, verdicts and
    test map): mutmut then regenerates only the files whose source changed, keeps the verdicts
    of the functions whose source is unchanged, and maps new tests to the functions they reach.
    """
    if STAGE.exists() and not keep:
        shutil.rmtree(STAGE)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for src, dst in (
        (ROOT / "overlay" / "nsdk", STAGE / "src" / "nsdk"),
        (ROOT / "generated" / "nsdk_api", STAGE / "src" / "nsdk_api"),
        (ROOT / "tests", STAGE / "tests"),
    ):
        if dst.exists():
            shutil.rmtree(dst)  # files deleted upstream must go here too
        shutil.copytree(src, dst, ignore=ignore)
    _write_site()
    config = MUTMUT_CONFIG.format(
        only=json.dumps([f"src/nsdk/{m}" for m in modules]),
        pytest_args=json.dumps(list(PYTEST_ARGS)),
        tests=json.dumps(list(FAST_TESTS)),
    )
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (STAGE / "pyproject.toml").write_text(text + config, encoding="utf-8")


def _retest_unkilled(modules: list[str]) -> int:
    """Forget the verdict of every mutant that was not killed, so the current tests meet it."""
    from mutmut.stats import status_by_exit_code

    count = 0
    for module in modules:
        meta = STAGE / "mutants" / "src" / "nsdk" / f"{module}.meta"
        if not meta.exists():
            continue
        data = json.loads(meta.read_text(encoding="utf-8"))
        codes = data["exit_code_by_key"]
        for name, code in codes.items():
            if code is not None and status_by_exit_code[code] not in ("killed", "timeout"):
                codes[name] = None
                count += 1
        meta.write_text(json.dumps(data, indent=4), encoding="utf-8")
    return count


def _pythonpath() -> str:
    return str(STAGE / "site")


def _phase1(max_children: int, names: list[str]) -> float:
    started = time.monotonic()
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *names]
    print("+", " ".join(cmd), f"(in {STAGE})", flush=True)
    # Child processes some tests start (python -c "import nsdk") import the mutants too.
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    done = subprocess.run(cmd, cwd=STAGE, env=env, check=False, stdout=subprocess.PIPE, text=True)
    # mutmut redraws a progress line with \r; keep the last state of each line.
    lines = [line.rsplit("\r", 1)[-1] for line in done.stdout.splitlines()]
    spinner = re.compile("^[\u2800-\u28ff] ")  # mutmut's progress spinner frames
    print("\n".join(line for line in lines if line.strip() and not spinner.match(line)), flush=True)
    if done.returncode != 0:
        raise SystemExit(f"mutmut run failed with exit code {done.returncode}")
    return time.monotonic() - started


def _results(modules: list[str]) -> dict[str, dict[str, int | None]]:
    """Mutant name -> exit code, per module, from mutmut's .meta files."""
    out: dict[str, dict[str, int | None]] = {}
    for module in modules:
        meta = STAGE / "mutants" / "src" / "nsdk" / f"{module}.meta"
        out[module] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    return out


def _slow_kills(names: list[str], jobs: int) -> tuple[set[str], float]:
    """The phase-1 survivors that ``SLOW_TESTS`` kill, and the wall time it took.

    One run records which reliability tests reach each function (``STATS_PLUGIN``); then each
    survivor runs against the tests that reach its function (none: it survives), ``jobs`` at a
    time (they mostly wait on loopback HTTP and injected faults).
    """
    from mutmut.utils.format_utils import mangled_name_from_mutant_name

    started = time.monotonic()
    base = [sys.executable, "-m", "pytest", "--rootdir=.", "-q", "-p", "nsdk_mutation_stats"]
    base += PYTEST_ARGS

    def run(args: list[str], **env: str) -> tuple[int, list[str]]:
        """Exit code and the node ids of the tests that failed (``-rfE`` summary)."""
        done = subprocess.run(
            [*base, "-rfE", *args],
            cwd=STAGE / "mutants",
            env={**os.environ, "PYTHONPATH": _pythonpath(), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            timeout=900,
        )
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, re.MULTILINE)
        return done.returncode, failed

    reached_file = STAGE / "reached.json"
    clean, _ = run(list(SLOW_TESTS), NSDK_MUTATION_REACHED=str(reached_file), MUTANT_UNDER_TEST="")
    if clean != 0:
        raise SystemExit(f"the reliability tests fail without any mutant (exit {clean})")
    reached: dict[str, list[str]] = json.loads(reached_file.read_text(encoding="utf-8"))
    todo = {n: reached.get(mangled_name_from_mutant_name(n), []) for n in names}
    print(
        f"  {sum(1 for t in todo.values() if t)} of {len(names)} reached by a reliability test",
        flush=True,
    )

    def check(name: str) -> bool:
        tests = todo[name]
        if not tests:
            return False
        code, failed = run(["-x", *tests], MUTANT_UNDER_TEST=name)
        if code in (0, 5):
            return False
        # A kill only if the failing test passes with no mutant, now, under the same load: a
        # reliability test that fails on the unmutated code too is flaky, not a kill.
        again, _ = run(failed or tests, MUTANT_UNDER_TEST="")
        if again != 0:
            flaky[name] = failed or tests
            return False
        return True

    flaky: dict[str, list[str]] = {}
    with ThreadPoolExecutor(jobs) as pool:
        killed = dict(zip(names, pool.map(check, names), strict=True))
    for name, tests in sorted(flaky.items()):
        print(f"  flaky, not a kill: {name}: {' '.join(tests)} failed without the mutant too")
    return {n for n, k in killed.items() if k}, time.monotonic() - started


def _import_time(module: str) -> set[str]:
    """Functions of ``module`` called while it is imported (attrs validators built by factories).

    mutmut switches mutants on in processes forked after the import, so a mutant in such a
    function is never active there: those are checked again in a fresh process.
    """
    import ast

    tree = ast.parse((ROOT / "overlay" / "nsdk" / module).read_text(encoding="utf-8"))
    statements: list[ast.stmt] = []
    for node in tree.body:
        body = node.body if isinstance(node, ast.ClassDef) else [node]
        statements += [n for n in body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    called = set()
    for statement in statements:
        for node in ast.walk(statement):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                called.add(node.func.id)
    return called


def _fresh_kills(names: list[str], jobs: int) -> set[str]:
    """The mutants the fast tests kill when the mutant is on from the first import."""
    cmd = [sys.executable, "-m", "pytest", "--rootdir=.", "-x", "-q", *PYTEST_ARGS, *FAST_TESTS]

    def killed(name: str) -> bool:
        done = subprocess.run(
            cmd,
            cwd=STAGE / "mutants",
            env={**os.environ, "PYTHONPATH": _pythonpath(), "MUTANT_UNDER_TEST": name},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=900,
        )
        return done.returncode not in (0, 5)

    with ThreadPoolExecutor(jobs) as pool:
        return {n for n, k in zip(names, pool.map(killed, names), strict=True) if k}


def _equivalents(module: str) -> int:
    """Mutants suppressed by ``# pragma: no mutate`` in ``module`` (generated without them)."""
    from mutmut.mutation.file_mutation import create_mutations

    path = STAGE / "src" / "nsdk" / module
    code = path.read_text(encoding="utf-8")
    bare = re.sub(r"#\s*pragma:\s*no mutate[^\n]*", "", code)
    with_pragmas = len(create_mutations(str(path), code)[1])
    return len(create_mutations(str(path), bare)[1]) - with_pragmas


def _change(mutant: str, module: str) -> Change:
    """Where ``mutant`` is in overlay/nsdk/``module`` and the lines it changes."""
    import ast

    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    diff = get_diff_for_mutant(mutant, path=f"src/nsdk/{module}").splitlines()
    # The diff is of the function alone: its first hunk starts at line `start` of it.
    hunk = next(i for i, line in enumerate(diff) if line.startswith("@@"))
    start = int(re.match(r"@@ -(\d+)", diff[hunk]).group(1))  # type: ignore[union-attr]
    body = [line for line in diff[hunk + 1 :] if not line.startswith("@@")]
    first = next(i for i, line in enumerate(body) if line[:1] in "-+")
    before = " / ".join(line[1:].strip() for line in body if line.startswith("-"))
    after = " / ".join(line[1:].strip() for line in body if line.startswith("+"))
    source = (ROOT / "overlay" / "nsdk" / module).read_text(encoding="utf-8")
    name, cls = orig_function_and_class_names_from_key(mutant)
    tree = ast.parse(source)
    scope = tree.body
    if cls is not None:
        scope = next(n.body for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    line_no = 0
    for item in scope:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == name:
            top = min([item.lineno, *(d.lineno for d in item.decorator_list)])
            line_no = top + start - 1 + first
    function = name if cls is None else f"{cls}.{name}"
    return Change(mutant, module, function, line_no, before, after)


def _listed() -> list[dict[str, str]]:
    """The EQUIVALENT entries: module, function, before, after, reason."""
    import tomllib

    entries: list[dict[str, str]] = tomllib.loads(EQUIVALENT.read_text(encoding="utf-8"))[
        "equivalent"
    ]
    return entries


def _matches(entry: dict[str, str], change: Change) -> bool:
    keys = ("module", "function", "before", "after")
    return all(entry[k] == getattr(change, k) for k in keys)


def main() -> int:
    """Stage, run both phases, print the report; the exit code follows ``--fail-under``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: all seven)")
    parser.add_argument("--fast-only", action="store_true", help="skip the reliability phase")
    parser.add_argument(
        "--report",
        action="store_true",
        help="no mutmut run: report the last run's results (and run phase 2 on its survivors)",
    )
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="keep the last run's mutants and results; copy the tests again and run only the "
        "mutants that were not killed (after adding tests)",
    )
    parser.add_argument(
        "--cached",
        action="store_true",
        help="reuse the last run's mutants and verdicts: test again only the mutants of "
        "functions whose source changed, and every mutant that was not killed",
    )
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--slow-jobs", type=int, default=6, help="reliability runs at a time in phase 2"
    )
    parser.add_argument(
        "--fail-under",
        type=float,
        default=0.0,
        help="exit 1 if a decision core's score (percent) is below this",
    )
    args = parser.parse_args()
    modules = [m if m.endswith(".py") else f"{m}.py" for m in args.modules] or [*CORES, *STORES]
    unknown = sorted(set(modules) - {*CORES, *STORES})
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {[*CORES, *STORES]}")
    if importlib.util.find_spec("nsdk") is not None:
        raise SystemExit("nsdk is installed in this venv: the tests would not import the mutants")

    os.environ.setdefault("NSDK_REPO_ROOT", str(ROOT))  # openapi.yaml, generator/ for the tests
    names: list[str] = []
    if args.report:
        if not (STAGE / "mutants").is_dir():
            parser.error("--report needs an earlier run's .mutation/mutants")
        _write_site()
    elif args.rerun:
        if not (STAGE / "mutants").is_dir():
            parser.error("--rerun needs an earlier run's .mutation/mutants")
        os.chdir(STAGE)
        codes = _results(modules)
        os.chdir(ROOT)
        names = [n for m in modules for n, c in codes[m].items() if c not in (1, 3, 36)]
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(ROOT / "tests", STAGE / "tests", ignore=ignore, dirs_exist_ok=True)
        _write_site()
        print(f"rerunning {len(names)} mutant(s) that were not killed", flush=True)
    elif args.cached and (STAGE / "mutants").is_dir():
        _stage(modules, keep=True)
        os.chdir(STAGE)
        print(f"cached: {_retest_unkilled(modules)} mutant(s) that were not killed to test again")
        os.chdir(ROOT)
    else:
        _stage(modules)
    run_mutmut = not args.report and (names or not args.rerun)
    fast_seconds = _phase1(args.max_children, names) if run_mutmut else 0.0
    os.chdir(STAGE)  # mutmut's helpers below read ./pyproject.toml and ./mutants
    results = _results(modules)
    from mutmut.stats import status_by_exit_code

    entries = _listed()
    report = {m: Module(m, pragma=_equivalents(m)) for m in modules}
    unkilled: list[Change] = []
    for module, codes in results.items():
        figures = report[module]
        for name, code in sorted(codes.items()):
            figures.generated += 1
            status = status_by_exit_code[code]
            if status in ("killed", "timeout"):
                figures.killed_fast += 1
                continue
            change = _change(name, module)
            if any(_matches(entry, change) for entry in entries):
                figures.listed.append(change)
            elif status == "survived":
                unkilled.append(change)
            else:  # "no tests" (no fast test reaches the function), "suspicious", ...
                figures.survivors.append(change)
                figures.other[status] = figures.other.get(status, 0) + 1

    at_import = {m: _import_time(m) for m in modules}
    fresh = [c.name for c in unkilled if c.function in at_import[c.module]]
    if fresh:
        print(f"\n{len(fresh)} survivor(s) in functions run at import: fresh processes", flush=True)
        fresh_killed = _fresh_kills(fresh, args.max_children)
        for change in [c for c in unkilled if c.name in fresh_killed]:
            report[change.module].killed_fast += 1
            unkilled.remove(change)

    slow_killed: set[str] = set()
    slow_seconds = 0.0
    if unkilled and not args.fast_only:
        print(f"\nphase 2: {len(unkilled)} survivor(s) against {' '.join(SLOW_TESTS)}", flush=True)
        slow_killed, slow_seconds = _slow_kills([c.name for c in unkilled], args.slow_jobs)
    for change in unkilled:
        figures = report[change.module]
        if change.name in slow_killed:
            figures.killed_slow += 1
        else:
            figures.survivors.append(change)

    print(f"\nphase 1 ({' '.join(FAST_TESTS)}): {fast_seconds:.0f} s wall")
    if not args.fast_only:
        print(f"phase 2 ({' '.join(SLOW_TESTS)}, per survivor): {slow_seconds:.0f} s wall")
    head = "module         mutants  equivalent  killed(fast)  killed(reliability)  survived  score"
    print("\n" + head + "\n" + "-" * len(head))
    for m in report.values():
        print(
            f"{m.name:<14} {m.mutants:>7}  {m.equivalent:>10}  {m.killed_fast:>12}  "
            f"{m.killed_slow:>19}  {len(m.survivors):>8}  {m.score:5.1f}%"
            + (f"  ({m.other})" if m.other else "")
        )
    print("score: killed / (mutants - equivalent)")
    print("\nsurvivors (file:line: before  ->  after):")
    for m in report.values():
        for change in sorted(m.survivors, key=lambda c: c.line):
            print(f"  {change}   [{change.name}]")
    used = [e for e in entries if any(_matches(e, c) for m in report.values() for c in m.listed)]
    stale = [e for e in entries if e["module"] in modules and e not in used]
    if stale:
        print(f"\n{EQUIVALENT.name}: {len(stale)} entr(ies) matched no surviving mutant:")
        for entry in stale:
            print(f"  {entry['module']} {entry['function']}: {entry['before']}")
    low = [m.name for m in report.values() if m.name in CORES and m.score < args.fail_under]
    if low:
        print(f"\nbelow --fail-under {args.fail_under}%: {', '.join(low)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
