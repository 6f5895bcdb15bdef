"""Mutation testing of the overlay's decision cores and store code (``nox -s mutation``).

mutmut 3 (https://github.com/boxed/mutmut) makes small changes to the code (a flipped comparison,
a changed constant, a deleted call, a function returning None), one mutant at a time, and runs
the tests that reach the changed function; a mutant no test notices "survives".

The modules come in two groups (``GROUPS``), each mutated in its own staging directory
(``.mutation/<group>/``) against its own tests, one group after the other:

- ``overlay``: the decision cores (``CORES``) and the in-memory store and coordination code
  (``STORES``). Phase 1: ``tests/overlay`` (MockTransport, injected clocks). Phase 2:
  ``tests/reliability -m "not slow"`` (real HTTP on loopback against the reference server),
  4 survivors at a time.
- ``shared``: the stores that share a session between processes and hosts (``SHARED``: the file
  store, the record codec, the cipher, the Redis store). Phase 1: ``tests/sharing`` and
  ``tests/redis`` on real files (kernel locks, a second process holding one) and against a real
  ``redis-server``, without the multi-process files. Phase 2: those files
  (``tests/sharing/test_processes.py``, ``tests/redis/test_redis_fleet.py``: processes that
  share one file or one Redis, SIGKILLed lock holders, a Redis outage), one survivor at a time
  (their load must not share the 2 cores) and with their load windows shortened
  (``Group.slow_env``). ``tests/overlay`` does not reach these modules, and
  ``tests/sharing/test_shared_memory.py`` is about the in-memory store.

mutmut does not mutate decorated functions: in both groups the staged copy applies
``@contextlib.contextmanager`` after the module instead (``Group.context_managers``,
``_undecorate``), so the critical sections are mutated too (the file locks, the Redis lease,
the in-memory lock, the refresh's entry into a store's lock).

Phase 1 runs through mutmut. Phase 2 runs once per phase-1 survivor, with the survivor switched
on; a phase-2 test that fails counts as a kill only if it then passes with no mutant, in the same
run (else it is reported as flaky and the mutant stays a survivor). The report prints, per
module, the mutants, how many each phase killed, how many are equivalent (``# pragma: no
mutate`` on their line: those mutants are not generated, and are counted here by generating the
module once more without its pragmas; and the mutants matched by ``equivalent.toml``, which only
``--full`` runs, to check the claim: one that is killed counts as killed and is reported), the
survivors, the mutants not tested, and the score (killed / non-equivalent mutants), then every
survivor as ``file:line`` with the line before and after.

Two ways to run, and which figure is which:

- ``--full``: everything from scratch (fresh staging, every mutant, both phases, no time limit).
  This is the figure of record (bench/RESULTS.md); 17-18 minutes on the 2-core machine.
- The default is incremental and bounded by ``--budget`` (seconds of wall time, default 240):
  it keeps ``.mutation/`` from the last run. A kill is kept while the source of the mutant's
  function is unchanged (mutmut's per-function hash: a change in a callee or in a test does not
  re-test it; ``--full`` does); the mutants of changed functions, and every mutant that was not
  killed, are tested against the current tests. Phase 2 keeps its verdicts while the library,
  generated, server and phase-2 test sources are byte-identical. When the budget runs out,
  each phase stops starting new mutants; the mutants left are counted as "not tested" (never
  as killed), the score then is a lower bound, and the next run continues from there. With no
  earlier run, the first bounded runs build the cache (a cold run does not fit in a few
  minutes).

A hung mutant (a test waiting for ever) is stopped by a per-test hang guard (``Group.hang``,
many times the slowest test) and counted as a timeout, which mutmut counts as killed; mutmut's
own per-mutant timeout is only a backstop, set wide so that a slow but passing run of many tests
is never taken for a hang on a loaded machine.

mutmut derives a module's name from its path, so the sources are staged as ``src/nsdk`` and
``src/nsdk_api`` in ``.mutation/<group>/`` (git-ignored) with a copy of the tests and of
pyproject.toml (plus the ``[tool.mutmut]`` table below); mutmut copies that again into
``mutants/`` there and puts ``mutants/src`` first on ``sys.path``. The venv must have no
installed ``nsdk``: the tests then import the mutated copy (checked below, and by mutmut's own
forced-failure run). Child processes the tests start (``python -c``, the sharing tests' client
processes, the fleet's hosts) import the mutants too, through a ``sitecustomize`` on
``PYTHONPATH``; while the map of which test reaches which function is recorded, each child
records what it reaches and the test that started it is credited with it (``CHILDREN_PLUGIN``).

Usage (from the nox session, whose venv has mutmut, the test tools and the reference server)::

    python mutation/run.py                 # all modules, both phases, incremental, <= 240 s
    python mutation/run.py --full          # the full cold run (the figure of record)
    python mutation/run.py _transport      # one module (a name, with or without .py)
    python mutation/run.py --group shared  # the modules of one group
    python mutation/run.py --fast-only     # phase 1 only
    python mutation/run.py --budget 0      # incremental, no time limit
    python mutation/run.py --fail-under 95 # exit 1 if a module mutated scores below 95 %
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Each group is staged in its own directory here (``STAGE / group.name``).
STAGE = ROOT / ".mutation"

#: The decision cores and the in-memory store and coordination code.
CORES = ("_retry.py", "_session.py", "_auth.py", "_transport.py")
STORES = ("_refresh.py", "_stores.py", "_tokens.py")
#: The stores that share a session between processes (a file) and hosts (Redis), the one
#: serialized form of a session they write, and the cipher that seals it at rest.
SHARED = ("_file_store.py", "_codec.py", "_cipher.py", "_redis_store.py")

#: Mutants that change nothing observable, each with the reason: matched by module, function
#: and the line before and after (not by mutmut's numbering, which shifts with every edit).
EQUIVALENT = Path(__file__).with_name("equivalent.toml")

#: Every pytest run's arguments (a group's phase 1 adds its ``fast_ignore``).
PYTEST_ARGS = (
    "--import-mode=importlib",
    "-p",
    "no:cacheprovider",
    "-p",
    "nsdk_mutation_hang",
    "-p",
    "nsdk_mutation_children",
    "-p",
    "nsdk_mutation_guard",
)


@dataclass(frozen=True)
class Group:
    """Modules mutated together, in their own staging directory, and the tests run on them."""

    name: str
    modules: tuple[str, ...]
    #: Phase 1, through mutmut: in-process tests, without the files ``fast_ignore`` and the
    #: tests ``fast_deselect``.
    fast_tests: tuple[str, ...]
    fast_ignore: tuple[str, ...]
    fast_deselect: tuple[str, ...]
    #: Phase 2, per phase-1 survivor: ``slow_jobs`` runs at a time, with ``slow_env`` set.
    slow_tests: tuple[str, ...]
    slow_jobs: int
    slow_env: dict[str, str]
    #: The staged test files phase 2's verdicts depend on (globs), besides ``SLOW_INPUTS``.
    slow_inputs: tuple[str, ...]
    #: The hang guard's limit per test with a mutant on, in seconds: phase 1, phase 2.
    hang: tuple[float, float]
    #: mutmut does not mutate a decorated function (but for staticmethod and classmethod): with
    #: this, the staged copy applies each ``@contextlib.contextmanager`` after the module
    #: instead (``_undecorate``), so those functions are mutated too.
    context_managers: bool

    @property
    def stage(self) -> Path:
        """Where the group is staged (git-ignored)."""
        return STAGE / self.name

    @property
    def fast_args(self) -> tuple[str, ...]:
        """pytest's arguments for phase 1."""
        ignored = (f"--ignore={path}" for path in self.fast_ignore)
        deselected = (f"--deselect={test}" for test in self.fast_deselect)
        return (*PYTEST_ARGS, *ignored, *deselected)


GROUPS = (
    Group(
        name="overlay",
        modules=(*CORES, *STORES),
        # The unit tests (MockTransport, injected clocks and sleeps), in-process.
        fast_tests=("tests/overlay",),
        # The public surface rather than the decisions (names, docs examples against a server,
        # a regenerated client, imports in fresh interpreters): slow, and every surviving
        # mutant they reach would pay for them.
        fast_ignore=(
            "tests/overlay/test_surface.py",
            "tests/overlay/test_exported_members.py",
            "tests/overlay/test_lazy_import.py",
        ),
        fast_deselect=(),
        # Real HTTP against the reference server on loopback; 4 at a time: they mostly wait
        # on loopback HTTP and injected faults.
        slow_tests=("tests/reliability", "-m", "not slow"),
        slow_jobs=4,
        slow_env={},
        slow_inputs=("tests/reliability/**/*.py",),
        # The slowest unit test takes about 0.5 s (set-up, call and teardown each), the
        # slowest reliability test a few seconds.
        hang=(6.0, 60.0),
        # _auth._store_lock (a store's critical section, entered for a refresh) and
        # _stores._Record.refresh_lock (the in-memory stores' lock).
        context_managers=True,
    ),
    Group(
        name="shared",
        modules=SHARED,
        # Real files (kernel locks, a second process holding one, a forked child) and a real
        # redis-server per test (tests/redis/conftest.py), in-process clients.
        fast_tests=("tests/sharing", "tests/redis"),
        fast_ignore=(
            "tests/sharing/test_processes.py",  # phase 2
            "tests/redis/test_redis_fleet.py",  # phase 2
            "tests/sharing/test_shared_memory.py",  # the in-memory store: reaches none of these
            "tests/redis/test_redis_fixture.py",  # the redis-server fixture itself
        ),
        # It forks and drops to an unprivileged user: the forked child's reach is lost at its
        # os._exit, so it would be run for nothing; the store's errors for a file it cannot
        # write are pinned in-process by test_mutation_gaps_store.py.
        fast_deselect=(
            "tests/sharing/test_file_store.py"
            "::test_read_only_directory_fails_before_any_refresh_is_sent",
        ),
        # Client processes sharing one file, hosts sharing one Redis (SIGKILLed holders, an
        # outage): one at a time, since each loads both cores, with their load windows cut
        # from 20-30 s to 8 s (still several expiries of the 1-2 s tokens each).
        slow_tests=("tests/sharing/test_processes.py", "tests/redis/test_redis_fleet.py"),
        slow_jobs=1,
        slow_env={"NSDK_SHARING_SECONDS": "8", "NSDK_FLEET_SECONDS": "8"},
        slow_inputs=("tests/sharing/*.py", "tests/redis/*.py"),
        # The slowest phase-1 test takes about 2 s alone (readers against 100 writes), more
        # beside a second mutant; a fleet run of phase 2 about 20 s.
        hang=(20.0, 120.0),
        # FileTokenStore._locked (the kernel locks) and RedisTokenStore._lease (the lease).
        context_managers=True,
    ),
)
#: What every group's phase-2 verdicts depend on, besides its ``slow_inputs``, as the run
#: staged it (relative to the group's stage) or installed it (the server, from ROOT): the
#: library (not its ``nsdk.cli`` package, which no phase-2 test uses), the generated client,
#: the shared test helpers.
SLOW_INPUTS = (
    (None, "src/nsdk/*.py"),
    (None, "src/nsdk_api/**/*.py"),
    (None, "tests/conftest.py"),
    (None, "tests/_secret_scan.py"),
    (ROOT, "server/src/**/*.py"),
)
#: mutmut exit code for a timeout (its status table: 36 -> "timeout").
TIMEOUT_EXIT = 36
#: mutmut exit code of a mutant it did not run ("skipped"): how equivalent.toml's are marked.
SKIPPED_EXIT = 34

#: The only entry on PYTHONPATH, for the child processes some tests start (``python -c``, the
#: sharing tests' client processes, the fleet's hosts) and for phase 2: it puts the mutants
#: first on ``sys.path`` (once mutmut has made them: a path missing when the interpreter starts
#: would stay cached as missing). While a test map is recorded ("stats" mode), a child records
#: the mutated functions it reaches in ``NSDK_MUTATION_CHILDREN/<pid>.json`` at exit, for
#: ``CHILDREN_PLUGIN``; mutmut's own recorder is replaced there, since it reads mutmut's config
#: from the working directory, which a child need not share. Without that directory a child
#: records nothing (stats mode off).
SITECUSTOMIZE = """\
import os
import sys

_src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mutants", "src")
if os.path.isdir(_src) and _src not in sys.path:
    sys.path.insert(0, _src)
if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    _out = os.environ.get("NSDK_MUTATION_CHILDREN", "")
    if os.path.isdir(_out):
        import atexit
        import json

        from mutmut.mutation import trampoline

        _reached = set()
        trampoline.record_trampoline_hit = lambda name, caller=None: _reached.add(name)

        def _save():
            if _reached:
                path = os.path.join(_out, f"{os.getpid()}.json")
                with open(path + ".tmp", "w", encoding="utf-8") as f:
                    json.dump(sorted(_reached), f)
                os.replace(path + ".tmp", path)

        atexit.register(_save)
    else:
        del os.environ["MUTANT_UNDER_TEST"]
"""

#: A pytest plugin (``-p nsdk_mutation_children``) for every run: while a test map is recorded,
#: the functions reached by the child processes of a test (saved by ``SITECUSTOMIZE`` as they
#: exited) are added to the test's own before mutmut's recorder (or ``STATS_PLUGIN``) reads
#: them at its teardown. A child still running then (a failed test) or killed (a SIGKILLed
#: lock holder) adds nothing.
CHILDREN_PLUGIN = """\
import json
import os

import pytest


def _saved():
    out = os.environ.get("NSDK_MUTATION_CHILDREN", "")
    if os.environ.get("MUTANT_UNDER_TEST") != "stats" or not os.path.isdir(out):
        return []
    return [os.path.join(out, n) for n in os.listdir(out) if n.endswith(".json")]


def pytest_runtest_setup(item):
    for path in _saved():  # a child of an earlier test that outlived it
        os.unlink(path)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    from mutmut.state import state

    for path in _saved():
        with open(path, encoding="utf-8") as f:
            state()._stats.update(json.load(f))
        os.unlink(path)
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

#: A pytest plugin (``-p nsdk_mutation_hang``): with a mutant on, a test (set-up, call or
#: teardown) still running after NSDK_MUTATION_HANG seconds ends the process with mutmut's
#: timeout code. A watchdog thread, not a signal: it also fires while the main thread waits on
#: a lock or an event loop that a mutant broke.
HANG_PLUGIN = """\
import os
import threading

import pytest

_LIMIT = float(os.environ.get("NSDK_MUTATION_HANG") or 0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if not _LIMIT or "__mutmut_" not in mutant:
        yield
        return
    timer = threading.Timer(_LIMIT, os._exit, ({timeout},))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
""".replace("{timeout}", str(TIMEOUT_EXIT))

#: A pytest plugin (``-p nsdk_mutation_guard``): a mutant runs as whoever runs this, often root,
#: and can reach far outside its test's temp directory. One did: ``FileTokenStore``'s "create each
#: missing parent 0700" with ``not d.exists()`` negated made every existing parent 0700, ``/``
#: and ``/tmp`` included, and no other user could open a file on the machine until they were
#: restored by hand. So the mode and owner of ``/``, the home directory, the temp directory and
#: the working directory with all their parents are read at the start, checked after every
#: test, and put back if changed; the test then fails (its teardown raises), so the mutant that
#: did it is killed, not left to break the tests after it.
GUARD_PLUGIN = """\
import os
import tempfile
from pathlib import Path

import pytest


def _watched():
    paths = {Path("/"), Path.home()}
    for base in (Path(tempfile.gettempdir()), Path.cwd()):
        base = base.resolve()
        paths.update([base, *base.parents])
    return sorted(paths)


def _state(path):
    st = path.stat()
    return st.st_mode & 0o7777, st.st_uid, st.st_gid


_BEFORE = {}


def pytest_sessionstart(session):
    for path in _watched():
        try:
            _BEFORE[path] = _state(path)
        except OSError:
            pass


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    changed = []
    for path, (mode, uid, gid) in _BEFORE.items():
        try:
            if _state(path) == (mode, uid, gid):
                continue
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        except OSError:
            pass
        changed.append(str(path))
    if changed:
        raise RuntimeError(f"the test changed the mode or owner of {changed} (put back)")
"""

MUTMUT_CONFIG = """
[tool.mutmut]
source_paths = ["src/nsdk"]
also_copy = ["src/nsdk_api"]
only_mutate = {only}
pytest_add_cli_args = {pytest_args}
pytest_add_cli_args_test_selection = {tests}
# A backstop only (hangs are stopped per test, see HANG_PLUGIN): mutmut counts only the tests'
# call phase in its estimate, and a survivor reaching hundreds of tests runs ~7 times longer
# than that estimate, more on a loaded machine; a tight timeout would count it as killed.
timeout_multiplier = 10.0
timeout_constant = 10.0
# mutmut would warn about every git-tracked file, and this pyproject.toml (whose table here
# changes with the modules chosen), changed since its last full run; it only warns and keeps
# its verdicts: noise here, where run.py decides what is tested again (--full: everything).
use_git_change_detection = false
on_dependency_change = "ignore"
"""

#: mutmut's generation step, run before ``mutmut run`` so equivalent.toml's mutants can be
#: marked as not to be run (mutmut keeps a verdict of an unchanged function).
GENERATE = """\
from mutmut.__main__ import copy_also_copy_files, copy_src_dir, create_mutants, setup_source_paths
from mutmut.mutation.trampoline import set_mutant_under_test
import os

set_mutant_under_test("mutant_generation")
os.makedirs("mutants", exist_ok=True)
copy_src_dir()
copy_also_copy_files()
setup_source_paths()
create_mutants({children})
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
    untested: int = 0  # no verdict: the budget ran out first
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
        """Killed share of the mutants that are not equivalent, in percent (untested: not)."""
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


class Budget:
    """The wall time left for this run (``None``: no limit)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds if seconds > 0 else None

    def left(self) -> float | None:
        """Seconds left (0 when spent), or None without a limit."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def spent(self) -> bool:
        """Whether the budget ran out."""
        left = self.left()
        return left is not None and left <= 0


def _write_site(group: Group) -> None:
    site = group.stage / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    (site / "nsdk_mutation_stats.py").write_text(STATS_PLUGIN, encoding="utf-8")
    (site / "nsdk_mutation_hang.py").write_text(HANG_PLUGIN, encoding="utf-8")
    (site / "nsdk_mutation_children.py").write_text(CHILDREN_PLUGIN, encoding="utf-8")
    (site / "nsdk_mutation_guard.py").write_text(GUARD_PLUGIN, encoding="utf-8")
    (group.stage / "children").mkdir(exist_ok=True)


def _stage(group: Group, modules: list[str], *, keep: bool = False) -> None:
    """Lay out the group's stage: src/nsdk, src/nsdk_api, tests/, pyproject.toml with [tool.mutmut].

    ``keep``: over the last run's layout, keeping ``mutants/`` (mutmut's mutants, verdicts and
    test map): mutmut then regenerates only the files whose source changed, keeps the verdicts
    of the functions whose source is unchanged, and maps new tests to the functions they reach.
    """
    # What an earlier layout left directly in STAGE (one stage for every module): not a group's.
    if STAGE.is_dir():
        for entry in STAGE.iterdir():
            if entry.name not in {g.name for g in GROUPS}:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    stage = group.stage
    if stage.exists() and not keep:
        shutil.rmtree(stage)
    before = {m: _functions(stage / "src" / "nsdk" / m) for m in modules}
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for src, dst in (
        (ROOT / "overlay" / "nsdk", stage / "src" / "nsdk"),
        (ROOT / "generated" / "nsdk_api", stage / "src" / "nsdk_api"),
        (ROOT / "tests", stage / "tests"),
    ):
        if dst.exists():
            shutil.rmtree(dst)  # files deleted upstream must go here too
        shutil.copytree(src, dst, ignore=ignore)
    if group.context_managers:
        for module in modules:
            _undecorate(stage / "src" / "nsdk" / module)
    if keep and (stage / "mutants").is_dir():
        # Refresh the tests' copy (files deleted upstream must go there too).
        shutil.rmtree(stage / "mutants" / "tests", ignore_errors=True)
        shutil.copytree(ROOT / "tests", stage / "mutants" / "tests", ignore=ignore)
        # A module the last run did not mutate is there as a plain copy newer than its
        # source, which mutmut would take as already mutated: remove it (its .meta, if any,
        # keeps the verdicts of its unchanged functions).
        # Its functions are then missing from mutmut's map of which test reaches which
        # function, which mutmut only extends for new tests: drop the map, mutmut rebuilds it.
        for module in modules:
            mutated = stage / "mutants" / "src" / "nsdk" / module
            if not mutated.exists() or "__mutmut_" not in mutated.read_text(encoding="utf-8"):
                mutated.unlink(missing_ok=True)
                (stage / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
            # Likewise a function new since the last run (or newly mutated): mutmut would find
            # no test for it.
            if not _functions(stage / "src" / "nsdk" / module) <= before[module]:
                (stage / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    _write_site(group)
    config = MUTMUT_CONFIG.format(
        only=json.dumps([f"src/nsdk/{m}" for m in modules]),
        pytest_args=json.dumps(list(group.fast_args)),
        tests=json.dumps(list(group.fast_tests)),
    )
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (stage / "pyproject.toml").write_text(text + config, encoding="utf-8")


def _functions(path: Path) -> set[str]:
    """The functions and methods of a module (``Class.name``), with a mark for undecorated ones."""
    if not path.exists():
        return set()
    return {
        f"{name}{'' if node.decorator_list else ' (undecorated)'}"
        for name, node in _defs(ast.parse(path.read_text(encoding="utf-8")))
    }


def _defs(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """The module's functions and its classes' methods, each with its name (``Class.name``)."""
    scopes: list[tuple[str, list[ast.stmt]]] = [("", tree.body)]
    scopes += [(f"{n.name}.", n.body) for n in tree.body if isinstance(n, ast.ClassDef)]
    for prefix, body in scopes:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield f"{prefix}{node.name}", node


def _undecorate(path: Path) -> None:
    """Apply each ``@contextlib.contextmanager`` of ``path`` after the module, not as a decorator.

    The same objects result (a decorator is a call on the function once defined); the decorator
    line becomes a comment, so every line keeps its number, and the calls go at the end.
    """
    lines = path.read_text(encoding="utf-8").split("\n")
    tree = ast.parse("\n".join(lines))
    calls = []
    for name, node in _defs(tree):
        if not isinstance(node, ast.FunctionDef) or len(node.decorator_list) != 1:
            continue
        if ast.unparse(node.decorator_list[0]) != "contextlib.contextmanager":
            continue
        line = node.decorator_list[0].lineno - 1
        indent = lines[line][: len(lines[line]) - len(lines[line].lstrip())]
        lines[line] = f"{indent}# @contextlib.contextmanager: applied at the end (run.py)"
        calls.append(f"{name} = contextlib.contextmanager({name})")
    if calls:
        path.write_text("\n".join([*lines, *calls, ""]), encoding="utf-8")


def _env(group: Group, **extra: str) -> dict[str, str]:
    # Child processes some tests start (python -c "import nsdk") import the mutants too.
    return {
        **os.environ,
        "PYTHONPATH": str(group.stage / "site"),
        "NSDK_MUTATION_CHILDREN": str(group.stage / "children"),
        **extra,
    }


def _meta(group: Group, module: str) -> Path:
    return group.stage / "mutants" / "src" / "nsdk" / f"{module}.meta"


def _set_codes(group: Group, module: str, codes: dict[str, int | None]) -> None:
    """Overwrite the verdicts of some mutants of ``module`` in mutmut's .meta file."""
    path = _meta(group, module)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["exit_code_by_key"].update(codes)
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")


def _generate(group: Group, max_children: int) -> None:
    """Make (or refresh) mutmut's mutants and .meta files, without running any test."""
    code = GENERATE.format(children=max_children)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=group.stage,
        env=_env(group),
        check=False,
        stdout=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise SystemExit(f"mutmut's mutant generation failed (exit {done.returncode})")


def _prepare_verdicts(
    group: Group, modules: list[str], entries: list[dict[str, str]], *, run_listed: bool
) -> int:
    """Before ``mutmut run``: forget every verdict that is not a kill, mark EQUIVALENT's mutants.

    A survivor (or a mutant skipped before) is tested again against the current tests; a mutant
    listed in EQUIVALENT gets mutmut's "skipped" verdict, so mutmut does not run it (unless
    ``run_listed``). Returns how many mutants will be tested. (cwd: the group's stage.)
    """
    from mutmut.stats import status_by_exit_code

    todo = 0
    wanted = {(e["module"], e["function"]) for e in entries}
    for module in modules:
        if not _meta(group, module).exists():
            continue
        data = json.loads(_meta(group, module).read_text(encoding="utf-8"))
        codes: dict[str, int | None] = {}
        for name, code in data["exit_code_by_key"].items():
            if code is not None and status_by_exit_code[code] in ("killed", "timeout"):
                continue
            codes[name] = None
            if not run_listed and (module, _function_of(name)) in wanted:
                change = _change(group, name, module)
                if any(_matches(entry, change) for entry in entries):
                    codes[name] = SKIPPED_EXIT
            todo += codes[name] is None
        _set_codes(group, module, codes)
    return todo


def _phase1(group: Group, max_children: int, budget: Budget) -> float:
    """``mutmut run`` over every mutant without a verdict, until done or the budget is spent.

    At the budget mutmut is interrupted (SIGINT: it stops its workers and keeps the verdicts it
    has); the mutants it did not finish keep no verdict and are reported as not tested.
    """
    started = time.monotonic()
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    print("+", " ".join(cmd), f"(in {group.stage})", flush=True)
    env = _env(group, NSDK_MUTATION_HANG=str(group.hang[0]))
    proc = subprocess.Popen(cmd, cwd=group.stage, env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = b""
    testing = False  # mutmut prints this once stats and the clean run are done
    stopped = False
    shown = time.monotonic()
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
            testing = testing or b"Running mutation testing" in out
        if testing and not stopped and budget.spent():
            print("  budget spent: stopping mutmut (what it did not test is not tested)")
            proc.send_signal(signal.SIGINT)
            stopped = True
        if time.monotonic() - shown >= 30:
            shown = time.monotonic()
            progress = re.findall(rb"(\d+/\d+)  \xf0\x9f\x8e\x89 (\d+)", out[-4096:])
            if progress:
                tested, killed = progress[-1]
                print(f"  mutmut: {tested.decode()} tested, {killed.decode()} killed", flush=True)
    code = proc.wait()
    # mutmut redraws a progress line with \r; keep the last state of each line.
    text = out.decode("utf-8", "replace")
    lines = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    spinner = re.compile("^[\u2800-\u28ff] ")  # mutmut's progress spinner frames
    print("\n".join(line for line in lines if line.strip() and not spinner.match(line)), flush=True)
    if code != 0 and not stopped:
        raise SystemExit(f"mutmut run failed with exit code {code}")
    return time.monotonic() - started


def _results(group: Group, modules: list[str]) -> dict[str, dict[str, int | None]]:
    """Mutant name -> exit code, per module, from mutmut's .meta files."""
    out: dict[str, dict[str, int | None]] = {}
    for module in modules:
        data = json.loads(_meta(group, module).read_text(encoding="utf-8"))
        out[module] = data["exit_code_by_key"]
    return out


def _inputs_key(group: Group) -> str:
    """A hash of every file phase 2's verdicts depend on, of this script and of the group."""
    digest = hashlib.sha256(Path(__file__).read_bytes() + repr(group).encode())
    inputs = [*SLOW_INPUTS, *((None, pattern) for pattern in group.slow_inputs)]
    for top, pattern in inputs:
        base = group.stage if top is None else top
        for path in sorted(base.glob(pattern)):
            digest.update(str(path.relative_to(base)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _slow_kills(
    group: Group, names: list[str], jobs: int, budget: Budget, *, cached_only: bool = False
) -> tuple[set[str], set[str], float]:
    """The phase-1 survivors that the group's ``slow_tests`` kill, those not tested, the wall time.

    One run records which of those tests reach each function (``STATS_PLUGIN``, with what the
    tests' child processes reach: ``CHILDREN_PLUGIN``); then each survivor runs against the tests
    that reach its function (none: it survives), ``jobs`` at a time. Verdicts are kept in
    ``phase2.json`` in the group's stage while the inputs (``_inputs_key``) are unchanged; a
    flaky one is not.
    """
    from mutmut.utils.format_utils import mangled_name_from_mutant_name

    started = time.monotonic()
    base = [sys.executable, "-m", "pytest", "--rootdir=.", "-q", "-p", "nsdk_mutation_stats"]
    base += PYTEST_ARGS
    cache_file = group.stage / "phase2.json"
    key = _inputs_key(group)
    cache: dict[str, object] = {}
    if cache_file.exists():
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    if cache.get("key") != key:
        cache = {"key": key, "reached": None, "verdicts": {}}
    verdicts: dict[str, str] = cache["verdicts"]  # type: ignore[assignment]

    def run(args: list[str], timeout: float | None, **env: str) -> tuple[int, list[str]]:
        """Exit code and the node ids of the tests that failed (``-rfE`` summary)."""
        done = subprocess.run(
            [*base, "-rfE", *args],
            cwd=group.stage / "mutants",
            env=_env(group, NSDK_MUTATION_HANG=str(group.hang[1]), **group.slow_env, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            timeout=timeout,
        )
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, re.MULTILINE)
        return done.returncode, failed

    reached: dict[str, list[str]] | None = cache["reached"]  # type: ignore[assignment]
    if cached_only:
        unknown = {n for n in names if n not in verdicts}
        return {n for n in names if verdicts.get(n) == "killed"}, unknown, 0.0
    if reached is None:
        reached_file = group.stage / "reached.json"
        clean, _ = run(
            list(group.slow_tests),
            None,
            NSDK_MUTATION_REACHED=str(reached_file),
            MUTANT_UNDER_TEST="",
        )
        if clean != 0:
            raise SystemExit(f"the phase-2 tests fail without any mutant (exit {clean})")
        reached = json.loads(reached_file.read_text(encoding="utf-8"))
        cache["reached"] = reached
    todo = {n: reached.get(mangled_name_from_mutant_name(n), []) for n in names}
    cached = {n for n in names if n in verdicts}
    print(
        f"  {sum(1 for t in todo.values() if t)} of {len(names)} reached by a phase-2 test"
        f"; {len(cached)} verdict(s) kept from an earlier run on the same sources",
        flush=True,
    )

    flaky: dict[str, list[str]] = {}
    untested: set[str] = set()

    def check(name: str) -> bool:
        if name in verdicts:
            return verdicts[name] == "killed"
        tests = todo[name]
        if not tests:
            verdicts[name] = "survived"
            return False
        try:
            if budget.spent():
                raise subprocess.TimeoutExpired("pytest", 0)
            code, failed = run(["-x", *tests], budget.left(), MUTANT_UNDER_TEST=name)
            if code in (0, 5):
                verdicts[name] = "survived"
                return False
            # A kill only if the failing test passes with no mutant, now, under the same load:
            # a phase-2 test that fails on the unmutated code too is flaky, not a kill.
            again, _ = run(failed or tests, budget.left(), MUTANT_UNDER_TEST="")
        except subprocess.TimeoutExpired:
            untested.add(name)
            return False
        if again != 0:
            flaky[name] = failed or tests
            return False
        verdicts[name] = "killed"
        return True

    with ThreadPoolExecutor(jobs) as pool:
        killed = dict(zip(names, pool.map(check, names), strict=True))
    cache_file.write_text(json.dumps(cache), encoding="utf-8")
    for name, tests in sorted(flaky.items()):
        print(f"  flaky, not a kill: {name}: {' '.join(tests)} failed without the mutant too")
    if untested:
        print(f"  budget spent: {len(untested)} survivor(s) not tested by phase 2")
    return {n for n, k in killed.items() if k}, untested, time.monotonic() - started


def _import_time(module: str) -> set[str]:
    """Functions of ``module`` called while it is imported (attrs validators built by factories).

    mutmut switches mutants on in processes forked after the import, so a mutant in such a
    function is never active there: those are checked again in a fresh process.
    """
    tree = ast.parse((ROOT / "overlay" / "nsdk" / module).read_text(encoding="utf-8"))
    statements: list[ast.stmt] = []
    for node in tree.body:
        body = node.body if isinstance(node, ast.ClassDef) else [node]
        statements += [n for n in body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    called = set()
    for statement in statements:
        for child in ast.walk(statement):
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Name):
                called.add(child.func.id)
    return called


def _fresh_kills(group: Group, names: list[str], jobs: int) -> set[str]:
    """The mutants the fast tests kill when the mutant is on from the first import."""
    cmd = [sys.executable, "-m", "pytest", "--rootdir=.", "-x", "-q"]
    cmd += [*group.fast_args, *group.fast_tests]

    def killed(name: str) -> bool:
        done = subprocess.run(
            cmd,
            cwd=group.stage / "mutants",
            env=_env(group, MUTANT_UNDER_TEST=name, NSDK_MUTATION_HANG=str(group.hang[0])),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=900,
        )
        return done.returncode not in (0, 5)

    with ThreadPoolExecutor(jobs) as pool:
        return {n for n, k in zip(names, pool.map(killed, names), strict=True) if k}


def _equivalents(group: Group, module: str) -> int:
    """Mutants suppressed by ``# pragma: no mutate`` in ``module`` (generated without them)."""
    from mutmut.mutation.file_mutation import create_mutations

    path = group.stage / "src" / "nsdk" / module
    code = path.read_text(encoding="utf-8")
    bare = re.sub(r"#\s*pragma:\s*no mutate[^\n]*", "", code)
    with_pragmas = len(create_mutations(str(path), code)[1])
    return len(create_mutations(str(path), bare)[1]) - with_pragmas


def _function_of(mutant: str) -> str:
    """``Class.method`` or ``function`` for a mutant name."""
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    name, cls = orig_function_and_class_names_from_key(mutant)
    return name if cls is None else f"{cls}.{name}"


def _change(group: Group, mutant: str, module: str) -> Change:
    """Where ``mutant`` is in the staged ``module`` and the lines it changes (cwd: the stage)."""
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
    # The staged copy: the source this run mutated (overlay/ may have moved on meanwhile).
    source = (group.stage / "src" / "nsdk" / module).read_text(encoding="utf-8")
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
    return Change(mutant, module, _function_of(mutant), line_no, before, after)


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


@dataclass
class Outcome:
    """One group's figures, and what the report lists besides them."""

    modules: dict[str, Module]
    fast_seconds: float = 0.0
    slow_seconds: float = 0.0
    wrongly_listed: list[Change] = field(default_factory=list[Change])  # killed, yet listed


def _run_group(
    group: Group,
    modules: list[str],
    entries: list[dict[str, str]],
    args: argparse.Namespace,
    budget: Budget,
) -> Outcome:
    """Stage ``modules`` of ``group``, run both phases (or only report), return the figures."""
    print(f"\n=== group {group.name}: {', '.join(modules)}", flush=True)
    if args.report:
        if not (group.stage / "mutants").is_dir():
            raise SystemExit(f"--report needs an earlier run's {group.stage / 'mutants'}")
        _write_site(group)
    else:
        cached = not args.full and (group.stage / "mutants").is_dir()
        _stage(group, modules, keep=cached)
        _generate(group, args.max_children)
        os.chdir(group.stage)  # mutmut's helpers read ./pyproject.toml and ./mutants
        run_listed = args.full or args.test_equivalents
        todo = _prepare_verdicts(group, modules, entries, run_listed=run_listed)
        os.chdir(ROOT)
        print(f"{'incremental' if cached else 'cold'} run: {todo} mutant(s) to test", flush=True)
    outcome = Outcome({m: Module(m) for m in modules})
    if not args.report:
        outcome.fast_seconds = _phase1(group, args.max_children, budget)
    os.chdir(group.stage)
    results = _results(group, modules)
    from mutmut.stats import status_by_exit_code

    report = outcome.modules
    for module in modules:
        report[module].pragma = _equivalents(group, module)
    unkilled: list[Change] = []
    wanted = {(e["module"], e["function"]) for e in entries}
    for module, codes in results.items():
        figures = report[module]
        for name, code in sorted(codes.items()):
            figures.generated += 1
            if code is None:
                figures.untested += 1
                continue
            status = status_by_exit_code[code]
            if status in ("killed", "timeout"):
                figures.killed_fast += 1
                if (module, _function_of(name)) in wanted:
                    change = _change(group, name, module)
                    if any(_matches(entry, change) for entry in entries):
                        outcome.wrongly_listed.append(change)
                continue
            change = _change(group, name, module)
            if any(_matches(entry, change) for entry in entries):
                figures.listed.append(change)
            elif status == "survived":
                unkilled.append(change)
            else:  # "no tests" (no fast test reaches the function), "suspicious", ...
                figures.survivors.append(change)
                figures.other[status] = figures.other.get(status, 0) + 1

    at_import = {m: _import_time(m) for m in modules}
    fresh = [c.name for c in unkilled if c.function in at_import[c.module]]
    if fresh and (args.report or budget.spent()):  # left for a run with time to check them
        for change in [c for c in unkilled if c.name in fresh]:
            report[change.module].untested += 1
            unkilled.remove(change)
    elif fresh:
        print(f"\n{len(fresh)} survivor(s) in functions run at import: fresh processes", flush=True)
        fresh_killed = _fresh_kills(group, fresh, args.max_children)
        for change in [c for c in unkilled if c.name in fresh_killed]:
            report[change.module].killed_fast += 1
            unkilled.remove(change)
            _set_codes(group, change.module, {change.name: 1})  # kept as killed by the next run

    slow_killed: set[str] = set()
    slow_untested: set[str] = set()
    if unkilled and not args.fast_only:
        tests = " ".join(group.slow_tests)
        print(f"\nphase 2: {len(unkilled)} survivor(s) against {tests}", flush=True)
        jobs = group.slow_jobs if args.slow_jobs is None else args.slow_jobs
        slow_killed, slow_untested, outcome.slow_seconds = _slow_kills(
            group, [c.name for c in unkilled], jobs, budget, cached_only=args.report
        )
    for change in unkilled:
        figures = report[change.module]
        if change.name in slow_killed:
            figures.killed_slow += 1
        elif change.name in slow_untested:
            figures.untested += 1
        else:
            figures.survivors.append(change)
    os.chdir(ROOT)
    return outcome


def main() -> int:
    """Stage, run both phases of each group, print the report; exit code: ``--fail-under``."""
    started = time.monotonic()
    every = [m for g in GROUPS for m in g.modules]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"modules to mutate (default: all {len(every)})")
    parser.add_argument(
        "--group",
        action="append",
        choices=[g.name for g in GROUPS],
        help="mutate the modules of this group (repeatable)",
    )
    parser.add_argument("--fast-only", action="store_true", help="skip phase 2")
    parser.add_argument(
        "--full",
        action="store_true",
        help="from scratch, every mutant, no time limit (the figure of record; 17-18 min)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=240.0,
        help="seconds of wall time for testing, every group together (default 240; 0: no "
        "limit); what is left is reported as not tested and tested by the next run",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="no test run: report the last run's verdicts (phase 2 from its cache only)",
    )
    parser.add_argument(
        "--test-equivalents",
        action="store_true",
        help="run equivalent.toml's mutants too, as --full does (a listed mutant that is "
        "killed is counted as killed and reported: the entry is wrong there)",
    )
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--slow-jobs",
        type=int,
        default=None,
        help="phase-2 runs at a time (default: the group's, 4 for overlay, 1 for shared)",
    )
    parser.add_argument(
        "--fail-under",
        type=float,
        default=0.0,
        help="exit 1 if a module mutated scores (percent) below this",
    )
    args = parser.parse_args()
    chosen = [m if m.endswith(".py") else f"{m}.py" for m in args.modules]
    unknown = sorted(set(chosen) - set(every))
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {every}")
    chosen += [m for g in GROUPS if g.name in (args.group or ()) for m in g.modules]
    if not chosen:
        chosen = every
    if importlib.util.find_spec("nsdk") is not None:
        raise SystemExit("nsdk is installed in this venv: the tests would not import the mutants")
    budget = Budget(0 if args.full else args.budget)

    os.environ.setdefault("NSDK_REPO_ROOT", str(ROOT))  # openapi.yaml, generator/ for the tests
    entries = _listed()
    outcomes: dict[str, Outcome] = {}
    for group in GROUPS:
        modules = [m for m in group.modules if m in chosen]
        if modules:
            outcomes[group.name] = _run_group(group, modules, entries, args, budget)

    print()
    for name, outcome in outcomes.items():
        group = next(g for g in GROUPS if g.name == name)
        print(f"{name} phase 1 ({' '.join(group.fast_tests)}): {outcome.fast_seconds:.0f} s wall")
        if not args.fast_only:
            print(
                f"{name} phase 2 ({' '.join(group.slow_tests)}, per survivor): "
                f"{outcome.slow_seconds:.0f} s wall"
            )
    print(f"total: {time.monotonic() - started:.0f} s wall")
    report = {m: f for outcome in outcomes.values() for m, f in outcome.modules.items()}
    head = (
        "module          mutants  equivalent  killed(fast)  killed(phase 2)  survived"
        "  not tested  score"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for m in report.values():
        print(
            f"{m.name:<15} {m.mutants:>7}  {m.equivalent:>10}  {m.killed_fast:>12}  "
            f"{m.killed_slow:>15}  {len(m.survivors):>8}  {m.untested:>10}  {m.score:5.1f}%"
            + (f"  ({m.other})" if m.other else "")
        )
    print("score: killed / (mutants - equivalent); a mutant not tested counts as not killed")
    untested = sum(m.untested for m in report.values())
    if untested:
        print(
            f"INCOMPLETE: {untested} mutant(s) not tested within the budget; the scores are lower "
            "bounds. Run again (it continues from here), or --full for the figure of record."
        )
    print("\nsurvivors (file:line: before  ->  after):")
    for m in report.values():
        for change in sorted(m.survivors, key=lambda c: c.line):
            print(f"  {change}   [{change.name}]")
    wrongly_listed = [c for outcome in outcomes.values() for c in outcome.wrongly_listed]
    if wrongly_listed:
        print(
            f"\n{EQUIVALENT.name}: {len(wrongly_listed)} listed mutant(s) killed (counted as such):"
        )
        for change in sorted(wrongly_listed, key=lambda c: (c.module, c.line)):
            print(f"  {change}   [{change.name}]")
    used = [e for e in entries if any(_matches(e, c) for m in report.values() for c in m.listed)]
    stale = [e for e in entries if e["module"] in report and e not in used]
    if stale:
        print(f"\n{EQUIVALENT.name}: {len(stale)} entr(ies) matched no surviving mutant:")
        for entry in stale:
            print(f"  {entry['module']} {entry['function']}: {entry['before']}")
    low = [m.name for m in report.values() if m.score < args.fail_under]
    if low:
        print(f"\nbelow --fail-under {args.fail_under}%: {', '.join(low)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
