"""The one error tree of livedesk, and what each branch means for a message or a feed.

    LivedeskError
     ├── ConfigurationError      misconfiguration: raised at start-up, the process does not start
     ├── TransientError          may succeed later: leave the message pending / retry the feed with backoff
     │    └── FetchError         timeout, connection refused, 429, 5xx
     └── PermanentError          will fail the same way again: record it, dead-letter the message, keep going
          ├── FeedError          the document is not a usable feed (broken XML, not a feed, too large, 4xx)
          └── ContractError      a stream entry does not match its schema
"""

from __future__ import annotations

from collections.abc import Mapping


class LivedeskError(Exception):
    """Base of every error livedesk raises on purpose."""


class ConfigurationError(LivedeskError):
    """The settings or the feed registry are wrong; nothing can run until they are fixed."""


class TransientError(LivedeskError):
    """A failure that may go away by itself: retry later."""


class PermanentError(LivedeskError):
    """A failure that retrying will not fix."""


class FetchError(TransientError):
    """A feed could not be fetched this time; `status` and `headers` when a server answered (429, 5xx)."""

    def __init__(self, feed: str, reason: str, *, status: int | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"feed {feed}: {reason}")
        self.feed = feed
        self.reason = reason
        self.status = status
        self.headers: Mapping[str, str] = headers or {}


class FeedError(PermanentError):
    """A feed document that cannot be used, with the feed named and the reason in one line; `status` if HTTP."""

    def __init__(self, feed: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"feed {feed}: {reason}")
        self.feed = feed
        self.reason = reason
        self.status = status


class ContractError(PermanentError):
    """A stream entry that does not match the schema of its stream."""
