"""The subscriber SDK: consume livedesk's change events reliably from another Python process.

```python
from services import client as livedesk

async with livedesk.connect("redis://localhost:6379", key_prefix="livedesk") as desk:
    async for event in desk.subscribe("alerts", types=["condition_updated"], where="region=London", start="0"):
        await handle(event)  # acknowledged when the loop asks for the next event; an exception leaves it pending
```

Each `group` gets every event; consumers sharing a group split them. Events are `schemas.ChangeEvent`s, delivered
at least once (deduplicate on `event_id` where acting twice matters); see `Subscription` for acknowledgement,
redelivery, malformed entries and ordering, and `Client.subscribe` for filters, replay (`start`, `reset`) and reclaim.
"""

from services.client.client import Client, connect, default_consumer, subscribe
from services.client.start import Start, start_id
from services.client.subscription import ErrorHandler, IncidentLoader, Subscription

__all__ = [
    "Client",
    "ErrorHandler",
    "IncidentLoader",
    "Start",
    "Subscription",
    "connect",
    "default_consumer",
    "start_id",
    "subscribe",
]
