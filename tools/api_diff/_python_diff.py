"""The Python part: griffe's breaking-change check over ``nsdk`` and ``nsdk_api``.

Each revision is loaded statically (no import, so no package needs to be installed) from its
own ``overlay/`` and ``generated/`` directories, with aliases resolved across the two packages,
then ``griffe.find_breaking_changes`` compares the public objects: a removed public name or
module, a parameter removed, renamed, moved or made required, a changed default, a changed
attribute type or return type, a base class removed. Docstrings do not count.

griffe reads the ``__init__`` of dataclasses but not of attrs classes, and both the generated
models (``@define``) and nsdk's values (``@attrs.frozen``) are attrs classes: ``AttrsInit``
gives them the ``__init__`` attrs would write, so a model field made required, removed or
renamed is a changed parameter griffe can see.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import griffe

__all__ = ["PACKAGES", "AttrsInit", "python_breakages"]

PACKAGES = ("nsdk", "nsdk_api")
_ATTRS_CLASSES = {
    "attrs.define",
    "attrs.frozen",
    "attrs.mutable",
    "attr.s",
    "attr.attrs",
    "attr.define",
    "attr.frozen",
    "attr.mutable",
}
_ATTRS_FIELDS = {"attrs.field", "attr.ib", "attr.attrib", "attr.field"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LOCATION = re.compile(r"^.*?:\d+: ")


def _call_args(expr: object) -> dict[str, str | griffe.Expr]:
    if not isinstance(expr, griffe.ExprCall):
        return {}
    return {a.name: a.value for a in expr.arguments if isinstance(a, griffe.ExprKeyword)}


def _attrs_decorator(cls: griffe.Class) -> griffe.Expr | None:
    for decorator in cls.decorators:
        value = decorator.value
        if isinstance(value, griffe.Expr) and value.canonical_path in _ATTRS_CLASSES:
            return value
    return None


def _attrs_parameter(attribute: griffe.Attribute, kw_only: bool) -> griffe.Parameter | None:
    value: str | griffe.Expr | None = attribute.value
    field: dict[str, str | griffe.Expr] = {}
    if isinstance(value, griffe.ExprCall) and value.canonical_path in _ATTRS_FIELDS:
        field = _call_args(value)  # field(default=..., factory=..., init=..., alias=...)
        value = field.get("default")
        factory = field.get("factory")
        if isinstance(factory, griffe.Expr):
            value = griffe.ExprCall(function=factory, arguments=[])
        elif factory is not None:
            value = f"{factory}()"
    if str(field.get("init")) == "False":
        return None
    alias = field.get("alias")
    return griffe.Parameter(
        str(alias).strip("'\"") if alias is not None else attribute.name.lstrip("_"),
        annotation=attribute.annotation,
        kind=griffe.ParameterKind.keyword_only
        if kw_only or str(field.get("kw_only")) == "True"
        else griffe.ParameterKind.positional_or_keyword,
        default=value,
    )


class AttrsInit(griffe.Extension):
    """Gives attrs classes the ``__init__`` attrs generates (fields in order, defaults, aliases)."""

    def on_class(self, *, cls: griffe.Class, **kwargs: object) -> None:
        """Add ``__init__`` to a class decorated with ``attrs.define`` and friends."""
        decorator = _attrs_decorator(cls)
        if decorator is None or "__init__" in cls.members:
            return
        options = _call_args(decorator)
        if str(options.get("init")) == "False":
            return
        kw_only = str(options.get("kw_only")) == "True"
        parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
        for member in list(cls.members.values()):
            if not isinstance(member, griffe.Attribute) or member.annotation is None:
                continue
            if "property" in member.labels or (
                "class-attribute" in member.labels and "instance-attribute" not in member.labels
            ):
                continue  # a property, or a ClassVar
            parameter = _attrs_parameter(member, kw_only)
            if parameter is not None:
                parameters.append(parameter)
        init = griffe.Function(
            "__init__",
            lineno=cls.lineno,
            endlineno=cls.lineno,
            parent=cls,
            parameters=griffe.Parameters(*parameters),
            returns="None",
        )
        cls.set_member("__init__", init)


def _load(root: Path) -> dict[str, griffe.Object | griffe.Alias]:
    search = [root / "overlay", root / "generated"]
    loader = griffe.GriffeLoader(
        search_paths=[str(p) for p in search],
        allow_inspection=False,
        extensions=griffe.load_extensions(AttrsInit()),
    )
    packages = {name: loader.load(name) for name in PACKAGES}
    loader.resolve_aliases(implicit=False, external=None)
    return packages


def _line(breakage: griffe.Breakage) -> str:
    # griffe's one-line explanation without colours and with the object's dotted path in place
    # of a file location (the base lives in a temporary directory).
    text = _LOCATION.sub("", _ANSI.sub("", breakage.explain(griffe.ExplanationStyle.ONE_LINE)))
    return f"{breakage.obj.path}: {text}"


def python_breakages(before: Path, after: Path) -> list[str]:
    """griffe's breaking changes from ``before`` to ``after`` (each a project root), one line each.

    Raises:
        griffe.GriffeError: A package cannot be found or parsed (e.g. no ``overlay/nsdk``).
    """
    logging.getLogger("griffe").setLevel(logging.ERROR)  # docstring-style chatter
    old, new = _load(before), _load(after)
    lines: list[str] = []
    for name in PACKAGES:
        lines.extend(_line(b) for b in griffe.find_breaking_changes(old[name], new[name]))
    return sorted(dict.fromkeys(lines))
