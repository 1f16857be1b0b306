"""The verdict on one raw entry, from what dedup has seen before: pure, no I/O.

Precedence: an exact repeat or a version older than the one judged tells nothing (None); a new version of a known
entry is a `revision`; a text seen before exactly (story key) under another identity, or nearly (MinHash) from
another source, is a `duplicate`; anything else is `new`. An outlet's own near-copies are its follow-ups (they share
its boilerplate), while its exact copies under a new GUID are the same text again. One text under two titles that
share no word worth the name, and that speaks of neither, is no copy: it is page furniture a crawler took for the
article ("We have sent you a verification email …"), and each entry is `new`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from schemas import RawUpdate, RevisionDiff, RevisionKind, Update, Verdict
from services.dedup.revisions import classify_revision
from services.identity import normalise_text, update_id
from services.tracker.words import counts as title_words

# Below this many words a body is too generic to call two entries copies of each other by text alone,
# so the title is part of the story key.
_STORY_MIN_WORDS = 40


def story_key(raw: RawUpdate, *, normalised: str | None = None) -> str:
    """Key shared by exact copies of one text across outlets (agency copy, syndication), whatever their titles.

    `normalised`: `normalise_text(raw.entry.text)`, when the caller has it already.
    """
    text = normalise_text(raw.entry.text) if normalised is None else normalised
    words = text.count(" ") + 1 if text else 0  # normalised text has single spaces between words, none around them
    basis = text if words >= _STORY_MIN_WORDS else normalise_text(raw.entry.title) + "\n" + text
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


_TITLE_MARK = "\x1f"  # between the owner's names and its title in a story value (never in either)


def story_value(owner_update_id: str, raw: RawUpdate) -> str:
    """What the story key stores for the first entry with a text: its update id, identity and title."""
    return f"{owner_update_id}|{raw.identity}{_TITLE_MARK}{raw.entry.title.replace(_TITLE_MARK, ' ')}"


def _furniture(owner_title: str, title: str, text: str) -> bool:
    """Whether one text under two titles is page furniture: the titles share no distinctive word, and the text
    speaks of neither (a sign-up notice under "Atlanta: 4 shot" and "Killeen boy shot"). An agency copy retitled
    ("Police shoot man in east London") still tells the story its first title named."""
    words_a, words_b = title_words(owner_title, ""), title_words(title, "")
    if not words_a or not words_b or not words_a.keys().isdisjoint(words_b):
        return False
    in_text = title_words("", text)
    return in_text.keys().isdisjoint(words_a) and in_text.keys().isdisjoint(words_b)


@dataclass(frozen=True)
class Version:
    """The content version of an entry that was last judged, when it was fetched, and where it is on `raw`."""

    fingerprint: str
    fetched_ms: int
    raw_id: str = ""

    def encode(self) -> str:
        return f"{self.fingerprint} {self.fetched_ms} {self.raw_id}".rstrip()

    @classmethod
    def decode(cls, value: str | None) -> Version | None:
        if not value:
            return None
        fingerprint, fetched_ms, raw_id = [*value.split(" "), "", ""][:3]
        return cls(fingerprint, int(fetched_ms or 0), raw_id)

    @classmethod
    def of(cls, raw: RawUpdate, raw_id: str = "") -> Version:
        return cls(raw.fingerprint, int(raw.fetched_at.timestamp() * 1000), raw_id)


@dataclass(frozen=True)
class NearMatch:
    """The closest indexed text from another source."""

    update_id: str
    source_id: str
    similarity: float


@dataclass(frozen=True)
class Seen:
    """What the dedup keys say about a raw entry before it is judged."""

    current: Version | None  # the entry's latest judged version
    story_owner: str | None = None  # `story_value` of the first entry with this exact text
    known: bool = False  # this very version was judged before (perhaps not as the latest)
    near: NearMatch | None = None  # a near-copy from another source, at or above the threshold
    previous: tuple[str, str] | None = None  # title and text of `current`, while `raw` still holds it

    @property
    def previous_fingerprint(self) -> str | None:
        return self.current.fingerprint if self.current else None


def judge(raw: RawUpdate, seen: Seen) -> Update | None:
    """The verdict on `raw` given what was seen before; None when it tells nothing new.

    Nothing new is an exact repeat (a version judged before, even one an edit has since replaced: a server
    alternating old and new documents) or a version fetched before the one already judged (it arrived late).
    """
    if seen.known or seen.previous_fingerprint == raw.fingerprint:
        return None
    if seen.current is not None and seen.current.fetched_ms > Version.of(raw).fetched_ms:
        return None
    fields: dict[str, object]
    owner, _, owner_title = (seen.story_owner or "").partition(_TITLE_MARK)
    exact_owner = owner.split("|", 1) if owner else None
    if seen.current is not None:
        revision = _revision(raw, seen.previous)
        fields = {
            "verdict": Verdict.revision,
            "previous_fingerprint": seen.current.fingerprint,
            "replaces": update_id(raw.identity, seen.current.fingerprint),
            "revision": revision,
            "reason": f"new version of a known entry ({revision.kind.value}: {revision.reason})",
        }
    elif (exact_owner is not None and exact_owner[1] != raw.identity
          and _furniture(owner_title, raw.entry.title, raw.entry.text)):
        fields = {"verdict": Verdict.new,
                  "reason": f"same text as {exact_owner[0]} under an unrelated title, about neither: page furniture, "
                            "not a copy"}
    elif exact_owner is not None and exact_owner[1] != raw.identity:
        fields = {
            "verdict": Verdict.duplicate,
            "duplicate_of": exact_owner[0],
            "similarity": 1.0,
            "reason": f"same text as {exact_owner[0]} ({exact_owner[1].split('|', 1)[0]})",
        }
    elif seen.near is not None:
        fields = {
            "verdict": Verdict.duplicate,
            "duplicate_of": seen.near.update_id,
            "similarity": round(seen.near.similarity, 3),
            "reason": f"near-copy of {seen.near.update_id} ({seen.near.source_id}, similarity "
            f"{seen.near.similarity:.2f})",
        }
    else:
        fields = {"verdict": Verdict.new, "reason": "first time this text is seen"}
    verdict = fields["verdict"]
    assert isinstance(verdict, Verdict)
    return Update.model_validate(
        {
            "update_id": update_id(raw.identity, raw.fingerprint),
            "source_id": raw.source_id,
            "authority": raw.authority,
            "identity": raw.identity,
            "fingerprint": raw.fingerprint,
            "guid": raw.identity.split("|", 1)[1],
            "url": raw.entry.link,
            "title": raw.entry.title,
            "text": raw.entry.text,
            "reported_at": _evidence_time(raw, verdict),
            "fetched_at": raw.fetched_at,
            **fields,
        }
    )


def _revision(raw: RawUpdate, previous: tuple[str, str] | None) -> RevisionDiff:
    if previous is None:
        # The old text has been trimmed from `raw`: calling it cosmetic could lose a fact, calling it factual only
        # costs a re-extraction.
        return RevisionDiff(kind=RevisionKind.factual, reason="previous version no longer held")
    found = classify_revision(previous[0], previous[1], raw.entry.title, raw.entry.text)
    return RevisionDiff(kind=found.kind, added=list(found.added), removed=list(found.removed), reason=found.reason)


def _evidence_time(raw: RawUpdate, verdict: Verdict) -> datetime:
    """When the update's evidence was published.

    Many feeds edit an entry without touching its dates; such a revision would carry the time of the version it
    replaces and could not outrank it. Unless the entry says when it was updated, a revision dates from when it
    was first seen.
    """
    entry = raw.entry
    dated_edit = entry.updated is not None and (entry.published is None or entry.updated > entry.published)
    if verdict is Verdict.revision and not dated_edit:
        return max(raw.reported_at, raw.fetched_at)
    return raw.reported_at
