"""From a parsed feed to the raw updates worth publishing: new entries and edited ones, nothing else."""

from __future__ import annotations

from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import WatchError

from schemas import FeedEntry, FeedSource, RawUpdate
from services.identity import content_fingerprint, entry_identity
from services.names import Keys
from services.wire import entry_fields


def raw_updates(source: FeedSource, entries: list[FeedEntry], fetched_at: datetime) -> list[RawUpdate]:
    """One `RawUpdate` per entry, oldest first, so the stream follows the order the world reported in. Pure."""
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
    # A feed that repeats an entry within one document is published once, in its last form.
    unique = {update.identity: update for update in updates}
    return sorted(unique.values(), key=lambda u: (u.reported_at, u.identity))


async def publish_changed(redis: Redis, keys: Keys, source_id: str, updates: list[RawUpdate]) -> list[RawUpdate]:
    """Publish on `raw` the updates whose content this feed has not shown before; return them.

    The entry and the record that it was seen are written in one transaction: after a crash the entry is either
    published and recorded, or neither, and then published at the next poll. The transaction watches the feed's
    record, so two pollers that fetched the same feed at once publish each change once.
    """
    if not updates:
        return []
    seen_key = keys.feed_seen(source_id)
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(seen_key)
                previous = await pipe.hmget(seen_key, [u.identity for u in updates])
                changed = [
                    update
                    for update, seen in zip(updates, previous, strict=True)
                    if (seen.decode() if isinstance(seen, bytes) else seen) != update.fingerprint
                ]
                if not changed:
                    await pipe.unwatch()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    return []
                pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                for update in changed:
                    pipe.xadd(keys.raw, entry_fields(update))  # type: ignore[arg-type]
                pipe.hset(seen_key, mapping={u.identity: u.fingerprint for u in changed})
                await pipe.execute()
                return changed
            except WatchError:
                continue  # another poller recorded this feed meanwhile: diff again against what it wrote
