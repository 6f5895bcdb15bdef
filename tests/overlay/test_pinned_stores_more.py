"""The in-memory stores' lock timeout pinned down where a mutation run found it loose (issue 16).

``lock_timeout`` must be positive (0 included in the refusal), the adapter over a 0.1-style
store passes it on, and a refresh lock held too long is reported with the store's name.
"""

from __future__ import annotations

import nsdk
import pytest
from nsdk._stores import BasicStoreAdapter


class Basic:
    """A 0.1-style store (load/save/clear) holding nothing."""

    def load(self) -> nsdk.Tokens | None:
        return None

    def save(self, tokens: nsdk.Tokens) -> None:
        raise AssertionError("nothing is saved here")

    def clear(self) -> None:
        raise AssertionError("nothing is cleared here")


@pytest.mark.parametrize("timeout", [0, 0.0, -1.0])
def test_memory_store_refuses_a_lock_timeout_that_is_not_positive(timeout: float):
    """0 and below: ConfigurationError naming the value, before any store exists."""
    with pytest.raises(nsdk.ConfigurationError) as info:
        nsdk.MemoryTokenStore(lock_timeout=timeout)
    assert str(info.value) == f"lock_timeout must be positive, got {timeout!r}"


def test_adapter_passes_its_lock_timeout_on():
    """BasicStoreAdapter(lock_timeout=0) is refused like the memory store's own."""
    with pytest.raises(nsdk.ConfigurationError, match=r"^lock_timeout must be positive, got 0$"):
        BasicStoreAdapter(Basic(), lock_timeout=0)


def test_refresh_lock_held_too_long_names_the_store():
    """A second refresh lock while the first is held: TokenStoreBusyError after lock_timeout."""
    store = nsdk.MemoryTokenStore(lock_timeout=0.001)
    held = store.refresh_lock()
    with held, pytest.raises(nsdk.TokenStoreBusyError) as info, store.refresh_lock():
        raise AssertionError("the refresh lock was taken twice")
    assert str(info.value) == (
        "MemoryTokenStore: another client held the session's refresh lock for more than "
        "0.001 s; retry, or raise lock_timeout"
    )
    assert info.value.store == "MemoryTokenStore"
    with store.refresh_lock():  # released: free again
        pass


def test_adapter_busy_lock_names_the_adapted_store():
    """The adapter's busy-lock error names the 0.1 store it adapts, not the memory store."""
    store = BasicStoreAdapter(Basic(), lock_timeout=0.001)
    with (
        store.refresh_lock(),
        pytest.raises(nsdk.TokenStoreBusyError) as info,
        store.refresh_lock(),
    ):
        raise AssertionError("the refresh lock was taken twice")
    assert str(info.value).startswith("Basic: another client held the session's refresh lock")
    assert info.value.store == "Basic"
