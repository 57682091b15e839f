"""CachedDirectory: TTL, single flight, negative caching, purge, and last-known answers during outages."""
from __future__ import annotations

import asyncio

import pytest

from mailgate.mail.directory import CachedDirectory, DirectoryUnavailable, Verification


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeDirectory:
    """An in-memory UserDirectory that counts calls, can be held open, and can be 'down'."""

    def __init__(self, users: set[str]) -> None:
        self.users = users
        self.asked: list[str] = []
        self.down = False
        self.gate = asyncio.Event()
        self.gate.set()
        self.closed = False

    async def user_exists(self, address: str) -> bool:
        self.asked.append(address)
        await self.gate.wait()
        if self.down:
            raise DirectoryUnavailable("directory is down")
        return address.lower() in self.users

    async def domain_names(self) -> set[str]:
        return {u.rpartition("@")[2] for u in self.users}

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory({"alice@example.com", "bob@example.com", "carol@example.org"})


@pytest.fixture
async def cache(directory: FakeDirectory, clock: Clock):
    cached = CachedDirectory(directory, ttl_s=600, clock=clock)
    yield cached
    await cached.aclose()


async def test_concurrent_and_sequential_lookups_make_one_call(cache, directory):
    directory.gate.clear()
    waiting = [asyncio.create_task(cache.verify("alice@example.com")) for _ in range(50)]
    await asyncio.sleep(0)
    directory.gate.set()
    answers = await asyncio.gather(*waiting)
    answers += [await cache.verify("alice@example.com") for _ in range(50)]
    assert directory.asked == ["alice@example.com"]
    assert all(a.exists is True for a in answers)
    assert answers[0] == Verification(True, cached=False, stale=False)
    assert answers[-1] == Verification(True, cached=True, stale=False)
    assert (cache.calls, cache.misses, cache.hits) == (1, 50, 50)


async def test_cancelled_caller_leaves_the_shared_lookup_to_the_others(cache, directory):
    directory.gate.clear()
    first = asyncio.create_task(cache.verify("bob@example.com"))
    second = asyncio.create_task(cache.verify("bob@example.com"))
    await asyncio.sleep(0)
    first.cancel()
    directory.gate.set()
    assert await second == Verification(True, cached=False)
    assert first.cancelled()
    assert (await cache.verify("bob@example.com")).cached


async def test_answer_expires_after_ttl(cache, directory, clock):
    await cache.verify("alice@example.com")
    clock.advance(599)
    assert (await cache.verify("alice@example.com")).cached
    assert len(directory.asked) == 1
    clock.advance(2)
    answer = await cache.verify("alice@example.com")
    assert answer == Verification(True, cached=False)
    assert len(directory.asked) == 2


async def test_negative_answers_are_cached(cache, directory):
    first = await cache.verify("nobody@example.com")
    second = await cache.verify("nobody@example.com")
    assert first == Verification(False, cached=False)
    assert second == Verification(False, cached=True)
    assert directory.asked == ["nobody@example.com"]


async def test_key_ignores_case_and_directory_gets_lowercase_domain(cache, directory):
    assert (await cache.verify("Alice@EXAMPLE.com")).exists is True
    assert (await cache.verify("alice@example.com")).cached
    assert directory.asked == ["Alice@example.com"]


async def test_purge_address_forces_a_call(cache, directory):
    await cache.verify("alice@example.com")
    await cache.verify("bob@example.com")
    assert cache.purge("ALICE@example.com") == 1
    assert not (await cache.verify("alice@example.com")).cached
    assert (await cache.verify("bob@example.com")).cached
    assert directory.asked.count("alice@example.com") == 2
    assert cache.purge("unknown@example.com") == 0


async def test_purge_domain_drops_every_address_of_it(cache, directory):
    for address in ("alice@example.com", "nobody@example.com", "carol@example.org"):
        await cache.verify(address)
    assert cache.purge("Example.COM") == 2
    assert not (await cache.verify("alice@example.com")).cached
    assert not (await cache.verify("nobody@example.com")).cached
    assert (await cache.verify("carol@example.org")).cached
    assert len(directory.asked) == 5


async def test_purge_all(cache, directory):
    for address in ("alice@example.com", "carol@example.org"):
        await cache.verify(address)
    assert cache.purge() == 2
    assert not (await cache.verify("carol@example.org")).cached
    assert cache.purge(None) == 1


async def test_purge_during_lookup_does_not_cache_the_old_answer(cache, directory):
    directory.gate.clear()
    pending = asyncio.create_task(cache.verify("dave@example.com"))
    await asyncio.sleep(0)
    cache.purge("example.com")
    directory.users.add("dave@example.com")
    directory.gate.set()
    assert (await pending).exists is True  # the waiter still gets its answer
    assert not (await cache.verify("dave@example.com")).cached  # ...but it was not cached
    assert len(directory.asked) == 2


async def test_directory_down_uses_expired_answer_as_stale(cache, directory, clock):
    await cache.verify("alice@example.com")
    await cache.verify("nobody@example.com")
    clock.advance(3600)
    directory.down = True
    assert await cache.verify("alice@example.com") == Verification(True, cached=True, stale=True)
    assert await cache.verify("nobody@example.com") == Verification(False, cached=True, stale=True)
    assert cache.stale_answers == 2
    directory.down = False
    assert await cache.verify("alice@example.com") == Verification(True, cached=False, stale=False)


async def test_directory_down_without_any_answer_is_unknown(cache, directory):
    directory.down = True
    assert await cache.verify("alice@example.com") == Verification(None, cached=False, stale=False)
    directory.down = False
    assert (await cache.verify("alice@example.com")).exists is True  # failures are not cached
    assert len(directory.asked) == 2


async def test_concurrent_lookups_share_one_failure(cache, directory):
    directory.down = True
    directory.gate.clear()
    waiting = [asyncio.create_task(cache.verify("bob@example.com")) for _ in range(10)]
    await asyncio.sleep(0)
    directory.gate.set()
    answers = await asyncio.gather(*waiting)
    assert {a.exists for a in answers} == {None}
    assert directory.asked == ["bob@example.com"]


async def test_last_known_answers_are_bounded_in_time(directory, clock):
    cache = CachedDirectory(directory, ttl_s=600, clock=clock, stale_ttl_s=3600)
    await cache.verify("alice@example.com")
    clock.advance(3601)
    directory.down = True
    assert (await cache.verify("alice@example.com")).exists is None
    await cache.aclose()
    assert directory.closed


async def test_aclose_cancels_lookups_in_flight(directory, clock):
    cache = CachedDirectory(directory, clock=clock)
    directory.gate.clear()
    pending = asyncio.create_task(cache.verify("alice@example.com"))
    await asyncio.sleep(0)
    await cache.aclose()
    assert await pending == Verification(None, cached=False)
    assert directory.closed
