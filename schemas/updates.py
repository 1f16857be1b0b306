"""Deduplicated updates: what the dedup stage publishes on the `updates` stream."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from schemas.base import WireModel
from schemas.vocabulary import Authority, RevisionKind, Verdict


class RevisionDiff(WireModel):
    """What a revision changed, compactly: the sentences (title included) added and removed, and whether facts did."""

    kind: RevisionKind
    added: list[str] = Field(default_factory=list, description="Sentences of the new version not in the old one.")
    removed: list[str] = Field(default_factory=list, description="Sentences of the old version not in the new one.")
    reason: str = Field(default="", description="Why it is factual or cosmetic, e.g. `numbers changed: 2 → 3`.")


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
    replaces: str | None = Field(default=None, description="For a revision: the update id of the version it replaces.")
    reason: str = Field(default="", description="Why this verdict, in one line.")
    similarity: float | None = Field(
        default=None, ge=0, le=1, description="For a duplicate: estimated Jaccard similarity to the update it copies."
    )
    revision: RevisionDiff | None = Field(
        default=None, description="For a revision: the sentences added and removed, factual or cosmetic."
    )
    guid: str = Field(description="The entry's GUID as the tracker cites it (the identity's entry part).")
    url: str | None = None
    title: str = ""
    text: str = ""
    reported_at: AwareDatetime = Field(description="When the evidence was published.")
    fetched_at: AwareDatetime = Field(description="When livedesk first saw this version.")
