"""``nsdk api <operation>``: every operation of openapi.yaml, from the generated command data.

The commands are built from ``nsdk_api._commands`` (rendered by the generator from the spec):
one option per parameter and per request-body property, with the spec's types, required flags,
enums and descriptions. Nothing is imported until ``nsdk api`` is used, and an operation's
generated module only when its command runs; it is called through the signed-in client
(``client.api``), so it gets the same refresh, retry and fail-closed behaviour as the SDK.

Secret fields (``format: password``) are never option values: they come from a prompt that does
not echo, or from stdin with ``--<field>-stdin``; secret fields of the response are printed as
``"***"``. The refresh operation rotates the stored session (its refresh token is the session's).
"""

from __future__ import annotations

import enum
import json
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import click

from . import _output
from ._output import OK

if TYPE_CHECKING:
    from nsdk_api._commands import Command, Option

    from ._app import State

MASK = "***"

_SCALAR_TYPES: Mapping[str, click.ParamType[Any]] = {
    "string": click.STRING,
    "integer": click.INT,
    "number": click.FLOAT,
    "boolean": click.BOOL,
}


def _commands() -> Mapping[str, Command]:
    from nsdk_api._commands import COMMANDS

    return COMMANDS


def _dest(index: int) -> str:
    # click parameter names of our own: the spec's names could collide with Python keywords.
    return f"opt_{index}"


def _param_type(option: Option) -> click.ParamType[Any]:
    if option.choices:
        return click.Choice(option.choices)
    if option.kind == "array":
        return _SCALAR_TYPES.get(option.item_kind, click.STRING)
    return _SCALAR_TYPES.get(option.kind, click.STRING)


def _click_option(index: int, option: Option) -> click.Option:
    required = " (required)" if option.required else ""
    if option.secret:
        return click.Option(
            [f"{option.flag}-stdin", _dest(index)],
            is_flag=True,
            help=f"Read {option.name} from the first line of stdin; else a prompt that does not "
            f"echo.{required} {option.help}".strip(),
        )
    where = {"path": "path parameter", "query": "query parameter", "header": "header"}.get(
        option.location, "body field"
    )
    text = f"{option.help} [{where}]".strip()
    if option.kind == "json":
        text += " (JSON)"
    if option.kind == "boolean" and not option.choices:
        negative = f"--no-{option.flag[2:]}"
        return click.Option(
            [f"{option.flag}/{negative}", _dest(index)],
            default=None,
            required=option.required,
            help=text,
        )
    return click.Option(
        [option.flag, _dest(index)],
        type=_param_type(option),
        multiple=option.kind == "array",
        required=option.required,
        help=text,
    )


def _help(command: Command) -> str:
    parts = [command.summary or command.name]
    if command.description:
        parts.append(command.description)
    session = "Uses the signed-in session." if command.authenticated else "No session needed."
    if command.role == "login":
        session = "Signs the profile in with the answer (like `nsdk login`, without the check)."
    elif command.role == "refresh":
        session = "Rotates the signed-in session's token pair (its refresh token is the body)."
    elif command.role == "logout":
        session = "Signs the profile out on success."
    parts.append(session)
    return "\n\n".join(parts)


class ApiGroup(click.Group):
    """Lists and builds the ``nsdk api`` commands from the generated data, on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every operation's command name, sorted."""
        return sorted(_commands())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command of operation ``cmd_name`` (None for an unknown name)."""
        command = _commands().get(cmd_name)
        if command is None:
            return None
        params: list[click.Parameter] = [_click_option(i, o) for i, o in enumerate(command.options)]

        @click.pass_obj
        def callback(state: State, /, **values: object) -> int:
            return _invoke(state, command, values)

        return click.Command(
            command.name,
            params=params,
            callback=callback,
            help=_help(command),
            short_help=command.summary,
        )


def _enum_for(hints: Mapping[str, Any], name: str) -> type[enum.Enum] | None:
    hint = hints.get(name)
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return candidate
    return None


def _model_for(hints: Mapping[str, Any]) -> Any:
    hint = hints.get("body")
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and hasattr(candidate, "from_dict"):
            return candidate
    raise click.UsageError("this operation's body model was not found in its generated module")


def _parse_json(option: Option, raw: str) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        raise click.BadParameter("not valid JSON", param_hint=option.flag) from None


def _jsonable(value: object) -> object:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in cast("list[object]", value)]
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _masked(data: object, secrets: tuple[str, ...]) -> object:
    if isinstance(data, dict):
        fields = cast("dict[str, object]", data)
        return {k: (MASK if k in secrets and v is not None else v) for k, v in fields.items()}
    return data


def _invoke(state: State, command: Command, values: Mapping[str, object]) -> int:
    from nsdk_api._commands import operation_module

    from ._app import read_secret

    if command.role == "refresh":
        return _refresh(state, command)
    module = operation_module(command)
    sync = cast("Callable[..., object]", module.sync)
    hints = typing.get_type_hints(sync)
    kwargs: dict[str, object] = {}
    body: dict[str, object] = {}
    whole: object = None
    for index, option in enumerate(command.options):
        value = values.get(_dest(index))
        if option.secret:
            if not value and not option.required:
                continue
            value = read_secret(
                option.name, from_stdin=bool(value), stdin_flag=f"{option.flag}-stdin"
            )
        if value is None or value == ():
            continue
        if option.kind == "json":
            value = _parse_json(option, str(value))
        elif option.kind == "array":
            value = list(cast("tuple[object, ...]", value))
        if option.location == "body":
            body[option.name] = value
        elif option.location == "body-json":
            whole = value
        else:
            kind = _enum_for(hints, option.name)
            if kind is not None:
                if isinstance(value, list):
                    value = [kind(v) for v in cast("list[object]", value)]
                else:
                    value = kind(value)
            kwargs[option.name] = value
    if command.has_body and (body or whole is not None or command.body_required):
        payload = whole if whole is not None else body
        try:
            kwargs["body"] = _model_for(hints).from_dict(payload)
        except (KeyError, TypeError, ValueError) as exc:
            raise click.UsageError(f"the request body does not match the spec: {exc}") from None
    return _call(state, command, sync, kwargs, body)


def _refresh(state: State, command: Command) -> int:
    from ._app import signed_in_client

    with signed_in_client(state) as client:
        client.refresh()
    # The answer's fields are the new pair: secrets, shown masked.
    click.echo(json.dumps(dict.fromkeys(command.response_secrets, MASK), indent=2))
    return OK


def _call(
    state: State,
    command: Command,
    sync: Callable[..., object],
    kwargs: dict[str, object],
    body: Mapping[str, object],
) -> int:
    from .._base import Boundary
    from ._app import signed_in_client

    if command.authenticated or command.role == "logout":
        client = signed_in_client(state)
    else:
        store = state.store()
        client = state.client(
            store, state.base_url_for(None if command.role == "login" else store.read())
        )
    with client:
        with Boundary(command.operation):
            result = sync(client=client.api, **kwargs)
        url = str(client.base_url)
        signed_in = client.tokens is not None
    if command.role == "login" and signed_in:
        data = _jsonable(result)
        answer = cast("dict[str, object]", data) if isinstance(data, dict) else {}
        state.profile.write_record(
            base_url=url,
            email=str(body["email"]) if isinstance(body.get("email"), str) else None,
            user_id=str(answer["userId"]) if isinstance(answer.get("userId"), str) else None,
            tenant_id=str(answer["tenantId"]) if isinstance(answer.get("tenantId"), str) else None,
        )
    elif not signed_in and (command.role == "logout" or command.authenticated):
        state.profile.remove_record()
    if result is not None:
        click.echo(json.dumps(_masked(_jsonable(result), command.response_secrets), indent=2))
    elif command.role == "logout":
        _output.note(f"signed out (profile {state.profile.name})")
    return OK


api = ApiGroup(
    "api",
    help="Call any operation of the API: `nsdk api <operation> --help` lists its options. "
    "The commands come from openapi.yaml; results print as JSON on stdout.",
    short_help="Call any operation of the API (from openapi.yaml).",
)


__all__ = ["MASK", "ApiGroup", "api"]
