"""The refresh algorithm against a shared token store, once, as generators of store steps.

``refresh_steps`` runs inside the store's refresh critical section; ``sign_in_steps`` and
``sign_out_steps`` write a login or a logout over whatever the store holds. They yield steps
(read the store, compare-and-set, POST refresh) that the sync and async shells in ``_auth.py``
execute; every decision stays here and in ``SessionCore``.
"""

from __future__ import annotations

from collections.abc import Generator

from ._errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    NsdkError,
    RateLimitError,
    TokenStoreError,
)
from ._retry import NOT_SENT_ERRORS
from ._session import SessionCore, Step
from ._tokens import StoredSession, Tokens


class ReadStore(Step):
    """Step: read the store; send back the ``StoredSession``."""

    __slots__ = ()


class WriteStore(Step):
    """Step: compare-and-set ``new`` over generation ``expected``; send back whether it was."""

    __slots__ = ("expected", "new")
    expected: int
    new: StoredSession

    def __init__(self, expected: int, new: StoredSession) -> None:
        self._set(expected=expected, new=new)


class SendRefresh(Step):
    """Step: POST refresh with ``refresh_token``; send back the ``Tokens`` or throw the error."""

    __slots__ = ("refresh_token",)
    refresh_token: str

    def __init__(self, refresh_token: str) -> None:
        self._set(refresh_token=refresh_token)


class StoreClock(Step):
    """Step: read the store's clock; send back its time (float), or None if it keeps none."""

    __slots__ = ()


CLOCK = StoreClock()

#: What the store-facing generators yield; the shells execute each one.
StoreStep = ReadStore | WriteStore | SendRefresh | StoreClock
READ = ReadStore()

#: Refresh outcomes that are definitive: the refresh token is dead, so the session fails closed.
#: (A 200 whose body cannot be parsed is included: the server rotated and the new pair is lost.)
DEFINITIVE_REFUSALS: tuple[type[NsdkError], ...] = (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
)


def never_reached_server(error: NsdkError) -> bool:
    """Whether a failed refresh certainly did not reach the server (its token is unspent).

    A 429 is refused before anything happens; a connection that failed before the bytes left
    (connect error or timeout, pool timeout) sent nothing. Anything else (a read timeout, a
    dropped answer, a 5xx) may have rotated the pair on the server.
    """
    if isinstance(error, RateLimitError):
        return True
    return isinstance(error, APIConnectionError) and isinstance(error.__cause__, NOT_SENT_ERRORS)


#: Bound on compare-and-set attempts for an unconditional write (each failure means a peer
#: wrote in between; this many in a row means the store is broken).
MAX_WRITE_ATTEMPTS = 100


def _replace_steps(
    tokens: Tokens | None, *, expired: bool = False
) -> Generator[StoreStep, object, StoredSession]:
    # Write `tokens` whatever the store holds (login, logout): a compare-and-set loop.
    for _ in range(MAX_WRITE_ATTEMPTS):
        stored = yield READ
        assert isinstance(stored, StoredSession)
        new = stored.successor(tokens, expired=expired)
        if (yield WriteStore(stored.generation, new)):
            return new
    raise TokenStoreError(
        f"the token store refused {MAX_WRITE_ATTEMPTS} writes in a row; is it broken?"
    )


def sign_in_steps(core: SessionCore, tokens: Tokens) -> Generator[StoreStep, object, None]:
    """Store a login's pair (a new generation: peers mid-refresh are fenced off) and hold it."""
    stored = yield from _replace_steps(tokens)
    core.signed_in(stored)


def sign_out_steps(core: SessionCore) -> Generator[StoreStep, object, None]:
    """Clear the store (a new generation: a racing refresh cannot store its pair) and memory."""
    try:
        stored = yield from _replace_steps(None)
    except BaseException:
        core.signed_out()  # local state is cleared even when the store cannot be written
        raise
    core.signed_out(stored.generation)


def refresh_steps(core: SessionCore, stale: str) -> Generator[StoreStep, object, None]:
    """The refresh algorithm, run by the shells inside the store's refresh critical section.

    1. Re-read the store. A pair other than ``stale`` there: a peer refreshed (or signed in):
       adopt it, send nothing. No pair: a peer signed out or failed closed: follow it.
    2. A refresh of this very pair in flight (its holder died, or its answer was lost): the
       refresh token may be spent. Present it again only within the reuse interval; otherwise
       fail closed, naming the cause (never a blind replay).
    3. Record the refresh in flight (a new generation), POST refresh, and compare-and-set the
       new pair over that generation. A write that fails the check (a logout, or a peer after
       a lost lease) stores nothing: the store's content is followed instead.
    4. A refused refresh re-reads before clearing: a newer pair a peer stored is adopted, never
       deleted.
    """
    core.observe_store_clock(_time((yield CLOCK)))  # every host agrees on the store's time
    stored = yield READ
    assert isinstance(stored, StoredSession)
    pending = core.pending_write()
    if pending is not None and stored.generation == pending[0]:
        # Our last rotation could not be stored: store it now, then go on from there.
        healed = stored.successor(pending[1])
        if (yield WriteStore(stored.generation, healed)):
            stored = healed
    if stored.tokens is None or stored.tokens.access_token != stale:
        core.follow(stored)  # adopt a peer's pair, or raise for a session a peer ended
        return
    record = stored.refreshing
    if record is not None and not core.may_resend(record):
        cleared = stored.successor(None, expired=True)
        if not (yield WriteStore(stored.generation, cleared)):
            core.follow(_stored((yield READ)))
            return
        reuse = (
            "0 (off)" if core.reuse_interval <= 0 else f"{core.reuse_interval:g} s, already past"
        )
        raise core.expired(
            "an earlier refresh of this session was interrupted (its process died, its "
            "answer was lost, or its holder's lease ran out), so its refresh token may be "
            "spent, and presenting it again "
            f"could be taken for replay (refresh_reuse_interval is {reuse})",
            cleared.generation,
        )
    record = record or core.in_flight()  # a resend keeps the first send's time
    marked = stored.successor(stored.tokens, refreshing=record)
    if not (yield WriteStore(stored.generation, marked)):
        core.follow(_stored((yield READ)))  # the critical section was lost: follow the store
        return
    sends = 2 if core.reuse_interval > 0 else 1  # one resend of a lost answer, if reusable
    tokens: object = None
    for attempt in range(1, sends + 1):
        try:
            tokens = yield SendRefresh(stored.tokens.refresh_token)
            break
        except DEFINITIVE_REFUSALS as exc:
            yield from _refused(core, marked, exc)
            return
        except NsdkError as exc:
            if never_reached_server(exc):
                # Nothing was spent: drop the in-flight record (best effort) and report.
                yield WriteStore(marked.generation, marked.successor(stored.tokens))
                raise
            if attempt == sends or not core.may_resend(record):
                raise  # the record stays: the next refresh decides (step 2)
    assert isinstance(tokens, Tokens)
    new = marked.successor(tokens)
    try:
        written = yield WriteStore(marked.generation, new)
    except TokenStoreError:
        core.unsaved(marked.generation, new)  # keep working from memory; stored next time
        raise
    if not written:
        core.follow(_stored((yield READ)))  # e.g. a logout meanwhile: stay signed out
        return
    core.refreshed(new)


def _refused(
    core: SessionCore, marked: StoredSession, cause: NsdkError
) -> Generator[StoreStep, object, None]:
    # The refresh was refused: re-read before clearing, never delete a peer's newer pair.
    cleared = marked.successor(None, expired=True)
    if not (yield WriteStore(marked.generation, cleared)):
        core.follow(_stored((yield READ)))
        return
    raise core.expired(
        "the refresh was refused "
        f"({type(cause).__name__}, request_id={getattr(cause, 'request_id', None)})",
        cleared.generation,
    ) from cause


def _time(value: object) -> float | None:
    assert value is None or isinstance(value, float)
    return value


def _stored(value: object) -> StoredSession:
    assert isinstance(value, StoredSession)
    return value


__all__ = [
    "CLOCK",
    "DEFINITIVE_REFUSALS",
    "MAX_WRITE_ATTEMPTS",
    "READ",
    "ReadStore",
    "SendRefresh",
    "StoreClock",
    "StoreStep",
    "WriteStore",
    "never_reached_server",
    "refresh_steps",
    "sign_in_steps",
    "sign_out_steps",
]
