"""Poller processes SIGKILLed mid-poll, again and again, while their feeds change: every entry version reaches `raw`,
none of them twice."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from schemas import RawUpdate
from services.names import Keys
from services.poller.feeds import FeedRegistry
from services.wire import as_optional_text, entry_data
from tests.cluster.workers import Worker, start_worker
from tests.support.feed_server import FeedServer, Served, atom, rss
from tests.support.polling import FAST_POLLING_ENV
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis

FEEDS = 36  # half RSS, half Atom
FIRST_ENTRIES = 4
POLLERS = 2
# Where in a poll each kill lands, in order:
# - "fetching": the victim's request for the feed is not answered yet;
# - "fetched": the victim was sent a document with new entries and has not published them yet;
# - "published": the victim published the feed's new entries and has not recorded the poll (nor released the lease).
KILLS = ("published", "fetched", "fetching", "published", "fetched")
# Slow answers, so that a request is in flight at any moment; a few polls per process at once, so that a kill leaves
# most feeds to the other poller (a dead poller's feeds wait for its leases to expire: 2 × the HTTP timeout + 30 s).
SERVER_DELAY_S = 0.1
POLLER_ENV = {
    **FAST_POLLING_ENV,
    "LIVEDESK_POLL_MAX_IN_FLIGHT": "4",
    "LIVEDESK_POLL_PER_HOST": "4",  # every feed is on one loopback host
    "LIVEDESK_POLL_HOST_GAP_S": "0",
    "LIVEDESK_HTTP_TIMEOUT_S": "2",  # a busy machine stalls a loopback answer now and then
    "LIVEDESK_HTTP_CONNECT_TIMEOUT_S": "1",
    "LIVEDESK_ALLOW_PRIVATE_HOSTS": "true",
}
# How long after a document was sent a "fetched" kill looks at its poller, at most (drawn at random).
FETCHED_SPREAD_S = 0.03
# Only a changed feed is fetched whole and published: the feeds change whenever no kill landed for this long.
CHANGE_AFTER_S = 2.0

Entry = tuple[str, str, str]  # guid, title, text
Version = tuple[str, str, str, str]  # feed, guid, title, text: one version of one entry


@dataclass
class Feed:
    """One feed the test serves, and its entries as served now."""

    id: str
    is_atom: bool
    entries: list[Entry]

    @property
    def path(self) -> str:
        return f"/{self.id}.xml"

    def document(self, base_url: str) -> bytes:
        if self.is_atom:
            return atom(f"{base_url}/hub", f"{base_url}{self.path}", *self.entries)
        return rss(*self.entries)

    def change(self, round_no: int, position: int) -> None:
        """Round `round_no` of changes: a third of the feeds gain an entry, a third edit one, a third stay as they
        were (which third turns with the round)."""
        match (position + round_no) % 3:
            case 0:
                self.entries.append(entry(self.id, len(self.entries)))
            case 1:
                n = round_no % len(self.entries)
                guid, title, text = self.entries[n]
                self.entries[n] = (guid, f"{title}, update {round_no}", f"{text} Update {round_no}: road closed.")


def entry(feed_id: str, n: int) -> Entry:
    return f"{feed_id}-e{n}", f"Fire on street {n} of {feed_id}", "Crews are at the scene."


@dataclass
class Feeds:
    """The feeds `server` serves, changed in rounds; every document served is remembered with its entries."""

    server: FeedServer
    feeds: list[Feed] = field(default_factory=list)
    documents: dict[bytes, list[Version]] = field(default_factory=dict)
    rounds: int = 0

    def __post_init__(self) -> None:
        self.feeds = [Feed(f"feed{n:02d}", n % 2 == 1, [entry(f"feed{n:02d}", i) for i in range(FIRST_ENTRIES)])
                      for n in range(FEEDS)]
        self.by_path = {feed.path: feed.id for feed in self.feeds}
        self._serve()

    def _serve(self) -> None:
        for feed in self.feeds:
            body = feed.document(self.server.url)
            self.documents[body] = [(feed.id, *e) for e in feed.entries]
            self.server.routes[feed.path] = body

    def change(self, keep: Collection[str]) -> None:
        """The next round of changes, served at once; the feeds in `keep` stay as they are."""
        self.rounds += 1
        for position, feed in enumerate(self.feeds):
            if feed.id not in keep:
                feed.change(self.rounds, position)
        self._serve()

    def versions(self, body: bytes) -> set[Version]:
        """The entry versions of a document served."""
        return set(self.documents[body])

    def registry(self) -> str:
        """The feeds as a TOML feed registry."""
        return "".join(f'[[source]]\nid = "{f.id}"\nname = "{f.id}"\nurl = "{self.server.url}{f.path}"\n\n'
                       for f in self.feeds)


def versions_on_raw(rows: list[RawUpdate]) -> set[Version]:
    return {(u.source_id, u.entry.guid or "", u.entry.title, u.entry.text) for u in rows}


@dataclass
class Kill:
    kind: str
    victim: str
    feed: str  # the feed caught mid-poll
    held: list[str]  # every feed it held the lease of
    at: float


@dataclass
class Pollers:
    """Keeps `POLLERS` poller worker processes running on the registry of `feeds` and SIGKILLs one of them mid-poll
    (`KILLS`), starting a replacement each time. A process is told apart by its consumer name: the names of the
    leases it holds start with it, and it is the User-Agent of its requests."""

    redis: Redis
    redis_url: str
    keys: Keys
    feeds: Feeds
    log_dir: Path
    live: list[Worker] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    started: int = 0
    on_raw: set[Version] = field(default_factory=set)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    _raw_read_to: str = "0-0"
    _served_looked_at: int = 0

    def start(self) -> Worker:
        self.started += 1
        consumer = f"poller-{self.started}"
        worker = start_worker("poller", self.redis_url, self.keys.prefix, consumer, self.log_dir,
                              LIVEDESK_SOURCES=str(self.log_dir / "feeds.toml"), LIVEDESK_USER_AGENT=consumer,
                              LIVEDESK_LOG_LEVEL="info", **POLLER_ENV)
        self.live.append(worker)
        return worker

    @property
    def caught(self) -> set[str]:
        """The feeds caught mid-poll by a kill. They change no more: the poller that takes one over must publish
        exactly what the victim fetched and did not publish, and none of what it did."""
        return {kill.feed for kill in self.kills}

    async def kill_mid_poll(self, kind: str) -> None:
        """Kill a live poller caught `kind` (`KILLS`) of a poll and start a replacement; change the feeds whenever
        none was caught for `CHANGE_AFTER_S`."""
        change_at = time.monotonic() + CHANGE_AFTER_S
        while True:
            news: set[Version] = set()
            if kind == "published":  # a window of a millisecond or so: woken by the publication itself
                news = await self.read_raw(block_ms=100)
            else:
                await asyncio.sleep(0.003)
            served = self.feeds.server.served[self._served_looked_at:]
            self._served_looked_at += len(served)
            if kind == "fetched" and served:
                # Anywhere from the document's arrival to its publication (the parse and a few round trips later).
                await asyncio.sleep(self.rng.uniform(0, FETCHED_SPREAD_S))
            if {"published": news, "fetched": served, "fetching": self.feeds.server.paths_in_flight()}[kind]:
                with self.frozen():
                    if caught := await self.look(kind, news, served):
                        await self.kill(kind, *caught)
                        return
            if time.monotonic() > change_at:
                self.feeds.change(keep=self.caught)
                change_at = time.monotonic() + CHANGE_AFTER_S

    async def look(self, kind: str, news: set[Version], served: list[Served]) -> tuple[Worker, str] | None:
        """A live poller caught `kind` of a poll, and the feed it polls; None if none is. Called with every poller
        frozen."""
        held = await self.holders()
        if kind == "fetching":
            # A request still unanswered now was not answered to its poller.
            fetching = sorted({self.feeds.by_path[path] for path in self.feeds.server.paths_in_flight()} & held.keys())
            return (held[fetching[0]], fetching[0]) if fetching else None
        if kind == "fetched":
            await self.read_raw(block_ms=None)
            for sent in reversed(served):
                feed_id = self.feeds.by_path[sent.path]
                poller = held.get(feed_id)
                if poller and self.still_polling(poller, sent) and self.feeds.versions(sent.body) - self.on_raw:
                    return poller, feed_id
            return None
        for feed_id in sorted({version[0] for version in news} & held.keys()):
            poller = held[feed_id]
            last = self.last_sent(feed_id, poller)
            if last and self.still_polling(poller, last) and news & self.feeds.versions(last.body):
                return poller, feed_id
        return None

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Every live poller stopped (SIGSTOP) inside: where each one is in its polls cannot change while it is
        looked at."""
        frozen = list(self.live)
        for worker in frozen:
            worker.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            for worker in frozen:
                if worker.process.poll() is None:
                    worker.process.send_signal(signal.SIGCONT)

    async def holders(self) -> dict[str, Worker]:
        """Feed id → the live poller holding its lease."""
        ids = [feed.id for feed in self.feeds.feeds]
        leases = await self.redis.mget([self.keys.feed_lease(feed_id) for feed_id in ids])
        by_consumer = {worker.consumer: worker for worker in self.live}
        held = {}
        for feed_id, lease in zip(ids, leases, strict=True):
            # A lease's holder is the poller's consumer name and a random suffix (`Poller._holder`).
            if (holder := as_optional_text(lease)) and (worker := by_consumer.get(holder.rpartition("-")[0])):
                held[feed_id] = worker
        return held

    async def read_raw(self, block_ms: int | None) -> set[Version]:
        """The entry versions published since the last read (waiting up to `block_ms` for one); kept in `on_raw`."""
        reply: Any = await self.redis.xread({self.keys.raw: self._raw_read_to}, block=block_ms)  # typed by protocol
        rows = entry_data(reply[0][1]) if reply else []
        if rows:
            self._raw_read_to = rows[-1][0]
        news = versions_on_raw([RawUpdate.model_validate_json(data) for _, data in rows])
        self.on_raw |= news
        return news

    def last_sent(self, feed_id: str, worker: Worker) -> Served | None:
        """The document of the feed last sent to `worker`."""
        sent = [s for s in list(self.feeds.server.served) if s.path == f"/{feed_id}.xml" and s.agent == worker.consumer]
        return sent[-1] if sent else None

    def still_polling(self, holder: Worker, sent: Served) -> bool:
        """Whether the poll that fetched `sent` has not finished, `holder` holding the feed's lease: it was sent to
        `holder`, and no request for the feed started since (a poller that finished and took the feed again would
        first request it again). Told by the server, not by what the poller records in Redis, which is under test."""
        return sent.agent == holder.consumer and not any(
            path == sent.path and at > sent.at for path, at in list(self.feeds.server.started))

    async def kill(self, kind: str, victim: Worker, feed_id: str) -> None:
        """SIGKILL `victim` (frozen: it dies where it was caught) and start a replacement."""
        held = sorted(f for f, holder in (await self.holders()).items() if holder is victim)
        victim.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.process.wait, 10)
        self.live.remove(victim)
        self.kills.append(Kill(kind, victim.consumer, feed_id, held, time.monotonic()))
        self.start()

    def stop(self) -> dict[str, int]:
        """SIGTERM every live poller; each one's exit code."""
        return {worker.consumer: worker.stop() for worker in self.live}


@contextlib.asynccontextmanager
async def pollers_on(redis: Redis, redis_url: str, keys: Keys, feeds: Feeds, log_dir: Path) -> AsyncIterator[Pollers]:
    """`Pollers` on the registry of `feeds`; whatever poller still runs on the way out is killed."""
    (log_dir / "feeds.toml").write_text(feeds.registry())
    pollers = Pollers(redis, redis_url, keys, feeds, log_dir)
    try:
        yield pollers
    finally:
        for worker in pollers.live:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()


async def test_killed_pollers_lose_no_entry_and_publish_none_twice(redis: Redis, redis_url: str, key_prefix: str,
                                                                  tmp_path: Path) -> None:
    """Two poller processes poll three dozen changing feeds; one of them is SIGKILLed mid-poll five times (before its
    request is answered, after it fetched new entries and before it published them, after it published them and
    before it recorded the poll) and replaced each time; the victims' feeds are taken over once their leases expire.
    At the end every entry's latest version, and every version sent to a poller that lived, is on `raw`; no version
    is there twice; nothing is dead-lettered; every feed's last poll succeeded; no feed was fetched by two pollers at
    once; the survivors stop cleanly on SIGTERM and leave no lease behind."""
    keys = Keys(key_prefix)
    registry = FeedRegistry(redis, keys)
    with FeedServer(delay_s=SERVER_DELAY_S) as server:
        feeds = Feeds(server)
        async with asyncio.timeout(150), pollers_on(redis, redis_url, keys, feeds, tmp_path) as pollers:
            for _ in range(POLLERS):
                pollers.start()
            for kind in KILLS:
                await pollers.kill_mid_poll(kind)
                # The victim's other feeds change while its leases run out: their next poll has new work.
                feeds.change(keep=pollers.caught)
            final = {feed.id: hashlib.sha256(server.routes[feed.path]).hexdigest() for feed in feeds.feeds}

            async def every_feed_polled_since_the_last_change() -> bool:
                """every feed's latest document fetched and its poll recorded, every feed polled several times"""
                recorded = [(await registry.status(feed_id)).get("body_hash") for feed_id in final]
                polls = Counter(path for path, _ in list(server.requests))
                return recorded == list(final.values()) and all(polls[feed.path] >= 3 for feed in feeds.feeds)

            await eventually(every_feed_polled_since_the_last_change, timeout_s=100)
            survivors = {worker.consumer for worker in pollers.live}
            exits = await asyncio.to_thread(pollers.stop)
    published = [RawUpdate.model_validate_json(data) for _, data in entry_data(await redis.xrange(keys.raw))]
    served = list(server.served)
    print(f"\nkills {[(k.kind, k.victim, k.feed, k.held) for k in pollers.kills]}; {pollers.started} pollers started, "
          f"{feeds.rounds} rounds of changes, {len(published)} entries published, {len(server.requests)} requests")

    assert [kill.kind for kill in pollers.kills] == list(KILLS)
    for kill in pollers.kills:
        for feed_id in kill.held:
            # The victim is dead: a later request is another poller's.
            assert any(path == f"/{feed_id}.xml" and at > kill.at for path, at in server.started), (
                f"{feed_id}, left by {kill.victim}, was taken over by another poller")
    assert max(server.most_in_flight.values()) == 1, "no feed was fetched by two pollers at once"

    versions = Counter((update.identity, update.fingerprint) for update in published)
    assert [version for version, count in versions.items() if count > 1] == [], "no entry version published twice"
    on_raw = versions_on_raw(published)
    latest = {(feed.id, *e) for feed in feeds.feeds for e in feed.entries}
    assert latest - on_raw == set(), "every entry's latest version is on raw"
    to_survivors = set().union(*(feeds.versions(s.body) for s in served if s.agent in survivors))
    assert to_survivors - on_raw == set(), "every version sent to a poller that lived is on raw"
    assert await redis.xlen(keys.deadletter) == 0, "nothing dead-lettered"

    statuses = {feed.id: await registry.status(feed.id) for feed in feeds.feeds}
    failed = {feed_id: status for feed_id, status in statuses.items()
              if status.get("last_status") not in ("200", "304") or status.get("last_error")}
    assert failed == {}, "every feed's last poll succeeded"
    assert exits == dict.fromkeys(survivors, 0), "the survivors stop cleanly on SIGTERM"
    assert await redis.mget([keys.feed_lease(feed.id) for feed in feeds.feeds]) == [None] * FEEDS, (
        "no lease left behind")
