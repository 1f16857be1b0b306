"""Deduplicated updates: what the dedup stage publishes on the `updates` stream."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from schemas.base import WireModel
from schemas.vocabulary import Authority, Verdict


class Update(WireModel):
    """One distinct piece of text about the world, with the dedup verdict that let it through."""

    update_id: str = Field(description="Deterministic: the same identity and content give the same id.")
    verdict: Verdict
    source_id: str
    authority: Authority
    identity: str
    fingerprint: str
    previous_fingerprint: str | None = Field(default=None, description="For a revision: the version it replaces.")
    duplicate_of: str | None = Field(default=None, description="For a duplicate: the update it copies.")
    guid: str = Field(description="The entry's GUID as the tracker cites it (the identity's entry part).")
    url: str | None = None
    title: str = ""
    text: str = ""
    reported_at: AwareDatetime = Field(description="When the evidence was published.")
    fetched_at: AwareDatetime = Field(description="When livedesk first saw this version.")
