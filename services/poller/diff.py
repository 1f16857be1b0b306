"""From a parsed feed to the raw updates worth publishing: new entries and edited ones, nothing else.

Entry identity (design §2.1) is the feed's GUID until the feed shows that its GUIDs cannot be trusted (one GUID for
different entries, or a GUID that changes with an edit: `identity.guid_trouble`); from then on its entries are named
by their canonical links. The feed's state hash remembers the finding (`guid_unreliable`: the reason,
`guid_unreliable_at`: the fetch that showed it) for good; the feed's link index (`Keys.feed_links`) holds the
evidence and, after the switch, the GUIDs that entries published before it keep as their names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from schemas import FeedEntry, FeedSource, RawUpdate
from services.identity import (
    Naming,
    canonical_link,
    content_fingerprint,
    entry_identity,
    guid_trouble,
    name_entries,
)
from services.names import Keys
from services.wire import as_optional_text, as_text, entry_fields

GUID_UNRELIABLE = "guid_unreliable"
GUID_UNRELIABLE_AT = "guid_unreliable_at"
# The link index of a feed is merged document after document (a WebSub push may carry one entry, and must not make
# the index forget the rest) and cut back to the current document's links when it outgrows this many fields, or
# twice the current document: at most max(LINKS_KEPT, 2 × links per document) fields of link + GUID per feed.
LINKS_KEPT = 1000


def raw_updates(source: FeedSource, entries: list[FeedEntry], fetched_at: datetime) -> list[RawUpdate]:
    """One `RawUpdate` per entry, oldest first, so the stream follows the order the world reported in. Pure.

    The identity assumes the feed's GUIDs are reliable; `publish_changed` names the entries again against what the
    feed has shown before.
    """
    updates = [
        RawUpdate(
            source_id=source.id,
            authority=source.authority,
            feed_url=source.url,
            entry=entry,
            identity=entry_identity(source.id, entry),
            fingerprint=content_fingerprint(entry),
            fetched_at=fetched_at,
        )
        for entry in entries
    ]
    # A feed that repeats an entry within one document is published once, in its last form. Same GUID with another
    # link (or, linkless, another title) is not a repeat: `publish_changed` needs both to see the feed's GUIDs fail.
    unique = {(update.identity, _shown_as(update.entry)): update for update in updates}
    return sorted(unique.values(), key=lambda u: (u.reported_at, u.identity))


def _shown_as(entry: FeedEntry) -> str:
    return canonical_link(entry.link) if entry.link and entry.link.strip() else "title:" + entry.title


def _named(source_id: str, updates: list[RawUpdate], names: list[str]) -> list[RawUpdate]:
    """`updates` under the identities `names` give them, one per identity (the last), oldest first."""
    renamed = [
        update if update.identity == identity else update.model_copy(update={"identity": identity})
        for update, identity in zip(updates, (f"{source_id}|{name}" for name in names), strict=True)
    ]
    unique = {update.identity: update for update in renamed}
    return sorted(unique.values(), key=lambda u: (u.reported_at, u.identity))


async def _against_seen(
    pipe: Pipeline, seen_key: str, source_id: str, updates: list[RawUpdate], naming: Naming
) -> list[tuple[RawUpdate, str | None]]:
    """Each update under its new name, with the fingerprint the feed last published under that identity."""
    named = _named(source_id, updates, naming.names)
    previous = await pipe.hmget(seen_key, [update.identity for update in named])
    return [(update, as_optional_text(seen)) for update, seen in zip(named, previous, strict=True)]


async def publish_changed(redis: Redis, keys: Keys, source_id: str, updates: list[RawUpdate]) -> list[RawUpdate]:
    """Publish on `raw` the updates whose content this feed has not shown before, under their identities; return them.

    The identities are decided here, against the feed's history (the module docstring). A document that shows the
    feed's GUIDs unreliable is itself named the new way: its entries that were published under their GUIDs before
    keep those identities (the link index pins them), so an edit that changed the GUID is a new version of the same
    entry, and entries first seen from then on are named by their links.

    The entries, the record that they were seen, the link index and the finding are written in one transaction:
    after a crash the entry is either published and recorded, or neither, and then published at the next poll. The
    transaction watches the feed's records, so two pollers that fetched the same feed at once publish each change
    once.
    """
    if not updates:
        return []
    seen_key, links_key, state_key = keys.feed_seen(source_id), keys.feed_links(source_id), keys.feed_state(source_id)
    entries = [update.entry for update in updates]
    document_links = sorted({canonical_link(e.link) for e in entries if e.link and e.link.strip()})
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(seen_key, links_key)
                # Not watched: other writers touch the state hash at every poll, and the finding only ever appears.
                reliable = await pipe.hget(state_key, GUID_UNRELIABLE) is None
                values = await pipe.hmget(links_key, document_links) if document_links else []
                stored = {link: as_text(v) for link, v in zip(document_links, values, strict=True) if v is not None}
                naming = name_entries(entries, guid_reliable=reliable, links=stored)
                diffed = await _against_seen(pipe, seen_key, source_id, updates, naming)
                finding = None
                if reliable:
                    known = {update.identity.removeprefix(f"{source_id}|") for update, seen in diffed if seen}
                    finding = guid_trouble(entries, stored, known)
                if finding is not None:
                    naming = name_entries(entries, guid_reliable=False, links=stored)
                    diffed = await _against_seen(pipe, seen_key, source_id, updates, naming)
                changed = [update for update, seen in diffed if seen != update.fingerprint]
                links: dict[Any, Any] = {  # Any: redis-py's mapping type is invariant in its keys
                    link: guid for link, guid in naming.links.items() if stored.get(link) != guid
                }
                if not changed and not links and finding is None:
                    await pipe.unwatch()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    return []
                grown = await pipe.hlen(links_key) + len(links.keys() - stored.keys()) if links else 0
                pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                for update in changed:
                    pipe.xadd(keys.raw, entry_fields(update))  # type: ignore[arg-type]
                if changed:
                    pipe.hset(seen_key, mapping={u.identity: u.fingerprint for u in changed})
                if grown > max(LINKS_KEPT, 2 * len(document_links)):
                    pipe.delete(links_key)
                    links = dict(naming.links)
                if links:
                    pipe.hset(links_key, mapping=links)
                if finding is not None:
                    found_at = updates[0].fetched_at.isoformat()
                    pipe.hset(state_key, mapping={GUID_UNRELIABLE: finding, GUID_UNRELIABLE_AT: found_at})
                await pipe.execute()
                return changed
            except WatchError:
                continue  # another poller recorded this feed meanwhile: diff again against what it wrote
