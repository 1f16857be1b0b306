"""Feed sources and the raw updates the poller publishes on the `raw` stream."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field, computed_field

from schemas.base import WireModel
from schemas.vocabulary import Authority


class FeedSource(WireModel):
    """One feed in the registry (the `[[source]]` table of a `sources.toml`)."""

    id: str = Field(min_length=1, description="Stable short name of the source, e.g. `met-police`.")
    name: str = Field(description="Human name of the outlet or body.")
    url: str = Field(description="The feed's URL (http, https or file).")
    authority: Authority = Field(default=Authority.news, description="How much the source is trusted.")
    tags: list[str] = Field(default_factory=list, description="Free labels for filtering, e.g. `london`, `police`.")
    configured_url: str | None = Field(
        default=None,
        description="The URL as the operator configured it (TOML or `feeds add`); `url` differs once a permanent "
        "redirect has moved the feed. Set by the registry on every feed it stores; None on a source not read from it.",
    )


class FeedEntry(WireModel):
    """One feed entry, normalised at the parse boundary: no parser object leaves it."""

    guid: str | None = Field(default=None, description="RSS guid or Atom id, when the feed gives one.")
    link: str | None = Field(default=None, description="The entry's link as served.")
    title: str = Field(default="", description="Plain-text title.")
    text: str = Field(default="", description="Plain-text body (content, else summary), markup removed.")
    html: str | None = Field(
        default=None,
        description="The body `text` was taken from, as HTML after the parser's sanitising, relative links made "
        "absolute against the feed's URL; None when the body is plain text, absent, or too long to keep. "
        "Not part of the content version: an edit to markup alone is not a revision.",
    )
    published: AwareDatetime | None = Field(default=None, description="When the entry says it was published.")
    updated: AwareDatetime | None = Field(default=None, description="When the entry says it was last updated.")


class RawUpdate(WireModel):
    """A new or edited entry as seen by the poller: one entry on the `raw` stream."""

    source_id: str
    authority: Authority
    feed_url: str
    entry: FeedEntry
    identity: str = Field(description="Entry identity: source id + GUID, canonical link or title hash (design §2.1).")
    # No whitespace: dedup stores a version as space-separated fields, fingerprint first.
    fingerprint: str = Field(pattern=r"^\S+$", max_length=128,
                             description="Content version: hash of the normalised title and text (design §2.2).")
    fetched_at: AwareDatetime = Field(description="When the document holding the entry was fetched.")

    # Derived, so it can never disagree with the entry; on the wire for consumers that do not compute it, and
    # recomputed (the sent value ignored) on read, which also marks entries written before it existed.
    @computed_field(  # type: ignore[prop-decorator]  # mypy does not model decorators stacked on a property
        description="True when the entry gives neither a published nor an updated time: its reported time is then "
        "the fetch time (`fetched_at`), which says when livedesk saw it, not when it was published."
    )
    @property
    def undated(self) -> bool:
        return self.entry.published is None and self.entry.updated is None

    @property
    def reported_at(self) -> datetime:
        """When the evidence was published: the entry's own time, else the fetch time (and `undated` is True).

        Never later than the fetch: an entry dated in the future (a wrong time zone, a typo) would otherwise outrank
        every report for hours.
        """
        return min(self.entry.updated or self.entry.published or self.fetched_at, self.fetched_at)
