"""The refresh algorithm's store steps pinned down where a mutation run found them loose (issue 16).

``refresh_steps`` and ``sign_in_steps`` are generators of store steps (read, compare-and-set
write, the store's clock, send the refresh); these tests play the store and the server step by
step and assert the exact steps, the session's state and the errors: the store's clock, the
store's content followed after a lost compare-and-set, the fail-closed message for an
interrupted refresh, how many times a refresh whose answer was lost is sent, and a store that
refuses every write.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import nsdk
import pytest
from nsdk._refresh import (
    CLOCK,
    MAX_WRITE_ATTEMPTS,
    READ,
    SendRefresh,
    WriteStore,
    refresh_steps,
    sign_in_steps,
)
from nsdk._session import SessionCore

T0 = 1_700_000_000.0
PAIR = nsdk.Tokens("access-1", "refresh-1")
PEER = nsdk.Tokens("access-9", "refresh-9")
Steps = Generator[object, object, None]


def _core(reuse: float, clock: Callable[[], float] = lambda: T0) -> SessionCore:
    return SessionCore(
        stored=nsdk.StoredSession(generation=1, tokens=PAIR),
        clock=clock,
        refresh_leeway=30.0,
        refresh_reuse_interval=reuse,
        refresh_deadline=30.0,
        on_tokens_refreshed=None,
        on_session_expired=None,
    )


def _start(core: SessionCore, stored: nsdk.StoredSession) -> tuple[Steps, object]:
    """Start refresh_steps for access-1: answer the store's clock (none) and the read."""
    steps = refresh_steps(core, "access-1")
    assert next(steps) is CLOCK
    assert steps.send(None) is READ
    return steps, steps.send(stored)


def _in_flight(started_at: float) -> nsdk.StoredSession:
    record = nsdk.RefreshInFlight(started_at=started_at, deadline=started_at + 30.0)
    return nsdk.StoredSession(generation=2, tokens=PAIR, refreshing=record)


def test_the_store_clock_sets_the_session_time():
    """The store's clock answers 100 s behind this host: the session keeps the store's time."""
    core = _core(0.0)
    steps = refresh_steps(core, "access-1")
    assert next(steps) is CLOCK
    assert steps.send(T0 - 100.0) is READ
    assert core.now() == T0 - 100.0
    assert core.in_flight().started_at == T0 - 100.0


@pytest.mark.parametrize(
    ("reuse", "shown"), [(0.0, "0 (off)"), (0.5, "0.5 s, already past"), (5.0, "5 s, already past")]
)
def test_interrupted_refresh_fails_closed_with_its_cause(reuse: float, shown: str):
    """A refresh of this pair was left in flight and may not be resent: cleared, expired, why."""
    core = _core(reuse)
    steps, step = _start(core, _in_flight(T0 - 10.0))  # sent 10 s ago: past any reuse here
    assert isinstance(step, WriteStore)
    assert (step.expected, step.new.generation, step.new.tokens) == (2, 3, None)
    assert step.new.expired is True
    with pytest.raises(nsdk.SessionExpiredError) as info:
        steps.send(True)
    assert str(info.value) == (
        "the session expired: an earlier refresh of this session was interrupted (its process "
        "died, its answer was lost, or its holder's lease ran out), so its refresh token may be "
        "spent, and presenting it again could be taken for replay (refresh_reuse_interval is "
        f"{shown}); local tokens were cleared; call login() again"
    )
    assert core.state is nsdk.SessionState.EXPIRED


def test_lost_clear_of_an_interrupted_refresh_follows_the_store():
    """The clearing write loses the compare-and-set: the peer's newer pair is adopted."""
    core = _core(0.0)
    steps, step = _start(core, _in_flight(T0 - 10.0))
    assert isinstance(step, WriteStore)
    assert steps.send(False) is READ
    with pytest.raises(StopIteration):
        steps.send(nsdk.StoredSession(generation=4, tokens=PEER))
    assert core.state is nsdk.SessionState.ACTIVE
    assert core.access_token() == "access-9"


def test_lost_in_flight_mark_follows_the_store():
    """Marking the refresh in flight loses the compare-and-set: nothing sent, the peer adopted."""
    core = _core(0.0)
    steps, step = _start(core, nsdk.StoredSession(generation=1, tokens=PAIR))
    assert isinstance(step, WriteStore)
    assert step.new.refreshing is not None
    assert steps.send(False) is READ
    with pytest.raises(StopIteration):
        steps.send(nsdk.StoredSession(generation=3, tokens=PEER))
    assert core.access_token() == "access-9"


def _sends(core: SessionCore, failures: int, on_failure: Callable[[], None] = lambda: None) -> int:
    """Drive a refresh whose answers are lost (a 502 after the server got it): count the sends."""
    steps, step = _start(core, nsdk.StoredSession(generation=1, tokens=PAIR))
    assert isinstance(step, WriteStore)
    step = steps.send(True)
    sent = 0
    lost = nsdk.ServerError("502", status_code=502, request_id="req_1")
    while isinstance(step, SendRefresh):
        assert step.refresh_token == "refresh-1"
        sent += 1
        if sent > failures:
            raise AssertionError("more sends than the test allows")
        on_failure()
        try:
            step = steps.throw(lost)
        except nsdk.ServerError as exc:
            assert exc is lost
            return sent
    raise AssertionError(f"unexpected step {step!r}")


def test_lost_answer_is_not_resent_without_a_reuse_interval():
    """refresh_reuse_interval 0: the refresh token is presented once; the error goes out."""
    assert _sends(_core(0.0), failures=5) == 1


@pytest.mark.parametrize("reuse", [0.5, 5.0])
def test_lost_answer_is_resent_once_within_the_reuse_interval(reuse: float):
    """Within the reuse interval: one resend of the same refresh token, then the error."""
    assert _sends(_core(reuse), failures=5) == 2


def test_lost_answer_is_not_resent_after_the_reuse_interval():
    """The first send's answer came back after the reuse interval: no resend."""
    now = [T0]

    def later() -> None:
        now[0] += 6.0

    assert _sends(_core(5.0, lambda: now[0]), failures=5, on_failure=later) == 1


def test_a_store_that_refuses_every_write_is_reported():
    """A login's write loses the compare-and-set every time: bounded, then TokenStoreError."""
    core = _core(0.0)
    steps = sign_in_steps(core, PEER)
    writes = 0
    step = next(steps)
    with pytest.raises(nsdk.TokenStoreError) as info:
        while True:
            if step is READ:
                step = steps.send(nsdk.StoredSession(generation=7, tokens=PAIR))
            else:
                assert isinstance(step, WriteStore)
                assert (step.expected, step.new.tokens) == (7, PEER)
                writes += 1
                step = steps.send(False)
    assert writes == MAX_WRITE_ATTEMPTS == 100
    assert str(info.value) == "the token store refused 100 writes in a row; is it broken?"
    assert core.access_token() == "access-1"
