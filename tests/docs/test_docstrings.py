"""The docstrings the API reference is rendered from: present, with examples that run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import nsdk
import pytest

griffe = pytest.importorskip("griffe", reason="the docs dependency group (griffe) is not installed")

# The names a reader reaches for first: each shows how it is used.
NEEDS_EXAMPLE = (
    "AsyncClient",
    "BASE_URL_ENV",
    "Client",
    "MemoryTokenStore",
    "NsdkError",
    "APIError",
    "RateLimitError",
    "RetryPolicy",
    "Session",
    "SessionExpiredError",
    "SessionState",
    "TokenStore",
    "Tokens",
    "parse_retry_after",
)


@pytest.fixture(scope="module")
def package(repo_root: Path) -> object:
    """nsdk as the API reference sees it: loaded from source by griffe, as mkdocstrings does."""
    return griffe.load(
        "nsdk",
        search_paths=[str(repo_root / "overlay"), str(repo_root / "generated")],
        docstring_parser="google",
    )


@pytest.mark.parametrize("name", nsdk.__all__)
def test_every_public_name_has_a_docstring(package: object, name: str) -> None:
    """Each name in nsdk.__all__ has a docstring whose first line says what it is."""
    member = package[name]  # type: ignore[index]
    docstring = member.docstring
    assert docstring is not None and docstring.value.strip(), f"nsdk.{name} has no docstring"
    assert docstring.value.strip().splitlines()[0].rstrip().endswith((".", ":")), name


@pytest.mark.parametrize("name", NEEDS_EXAMPLE)
def test_key_names_have_an_example(package: object, name: str) -> None:
    """The names a reader starts from carry an Example section."""
    sections = package[name].docstring.parse("google")  # type: ignore[index]
    kinds = {section.kind.value for section in sections}
    assert "examples" in kinds, f"nsdk.{name}: add an Examples: section"


MODULES = ["nsdk", *(f"nsdk.{m.name}" for m in pkgutil.iter_modules(nsdk.__path__))]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module: str) -> None:
    """Every example not marked +SKIP runs and prints what the docstring says."""
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(mod, globs={"nsdk": nsdk, **vars(mod)}):
        runner.run(test)
    # Public names report the module ``nsdk``, so the module scan skips their members: collect
    # the examples of the public classes defined here from the classes themselves.
    for name in getattr(mod, "__all__", ()):
        value = getattr(mod, name)
        if isinstance(value, type) and value.__module__ == "nsdk" and module != "nsdk":
            owner = vars(value)
            if any(getattr(v, "__doc__", None) and ">>>" in v.__doc__ for v in owner.values()):
                for test in finder.find(
                    value, f"nsdk.{name}", module=False, globs={"nsdk": nsdk, **vars(mod)}
                ):
                    runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} docstring example(s) failed in {module}"
