"""Revision classification (services.dedup.revisions): what an edit changed, and whether it changed facts."""

from __future__ import annotations

import pytest

from schemas import RevisionKind
from services.dedup.revisions import MAX_LISTED, MAX_SENTENCE_CHARS, classify_revision

F, C = RevisionKind.factual, RevisionKind.cosmetic

TITLE = "Man shot by police in Walthamstow"
LEAD = "A man has been shot by armed police officers at a house in Walthamstow, east London."
CRITICAL = "He was taken to hospital, where he is in a critical condition."
CORDON = "A cordon remains in place around the address."
BODY = f"{LEAD} {CRITICAL} {CORDON}"

STAB_TITLE = "Man stabbed in Walthamstow"
STAB = ("A man has been stabbed in Hoe Street, Walthamstow. "
        "He was taken to hospital with injuries that are not thought to be life-threatening.")

QUOTE = 'Det Insp Jane Smith said: "We are appealing for anyone who saw what happened to come forward."'
NAMED = "He has been named locally as Jordan Pike."
LINK = "Read the full statement on the Met's website: https://news.example.com/statement?utm_source=rss&utm_medium=feed"


def _edit(old: str, new: str, text: str = BODY) -> str:
    assert old in text, old  # a case that edits nothing would test nothing
    return text.replace(old, new)


# id, old title, old text, new title, new text, kind, a fragment of the reason
CASES = [
    # --- condition, casualty, legal, investigation and scene words ---------------------------------------------------
    pytest.param(TITLE, BODY, TITLE, _edit("he is in a critical", "he is now in a stable"), F,
                 "condition words changed: critical → stable", id="critical-to-stable"),
    pytest.param(TITLE, f"{LEAD} His injuries are life-threatening.", TITLE,
                 f"{LEAD} His injuries are not life-threatening.", F,
                 "condition words changed: critical → not life-threatening", id="negated-life-threatening"),
    pytest.param(TITLE, BODY, TITLE, f"{BODY} His injuries are potentially life-changing.", F,
                 "condition words added: life-changing", id="life-changing-added"),
    pytest.param(TITLE, f"{LEAD} {CORDON}", TITLE, f"{LEAD} He was pronounced dead at the scene. {CORDON}", F,
                 "casualty words added: dead", id="pronounced-dead-added"),
    pytest.param(TITLE, BODY, TITLE, f"{BODY} A man has been arrested.", F,
                 "legal words added: arrested", id="arrest-added"),
    pytest.param(TITLE, BODY, TITLE, f"{BODY} A 17-year-old boy has been charged with attempted murder.", F,
                 "legal words added: charged", id="charge-added"),
    pytest.param(TITLE, f"{BODY} A man has been arrested.", TITLE,
                 f"{BODY} A man has been arrested. He has since been released on bail.", F,
                 "legal words added: released", id="bail-added"),
    pytest.param(TITLE, f"{BODY} No arrests have been made.", TITLE, f"{BODY} Two arrests have been made.", F,
                 "legal words changed: no arrests → arrested", id="no-arrests-to-two-arrests"),
    pytest.param(TITLE, BODY, TITLE, f"{BODY} Police said there is no wider risk to the public.", F,
                 "scene words added: no risk", id="no-wider-risk-added"),
    pytest.param(TITLE, BODY, TITLE, _edit(CORDON, "The cordon around the address has since been lifted."), F,
                 "scene words changed: cordon → cordon lifted", id="cordon-lifted"),
    pytest.param(TITLE, BODY, TITLE, _edit(CORDON, ""), F, "scene words removed: cordon", id="cordon-sentence-removed"),
    pytest.param(TITLE, BODY, TITLE, f"{BODY} The IOPC has launched an independent investigation.", F,
                 "investigation words added: IOPC, investigation", id="iopc-investigation-added"),
    # --- numbers -----------------------------------------------------------------------------------------------------
    pytest.param(TITLE, f"{LEAD} Two men were taken to hospital.", TITLE, f"{LEAD} Three men were taken to hospital.",
                 F, "numbers changed: 2 → 3", id="two-men-to-three-men"),
    pytest.param(TITLE, f"{LEAD} A 17-year-old boy was also hurt.", TITLE, f"{LEAD} An 18-year-old boy was also hurt.",
                 F, "numbers changed: 17 → 18", id="age-changed"),
    pytest.param(TITLE, f"{BODY} A man has been arrested.", TITLE,
                 f"{BODY} A man has been arrested. A second man has since been arrested.", F,
                 "numbers added: 2nd", id="second-man-arrested"),
    pytest.param(TITLE, f"Officers were called at about 10pm on Friday. {CRITICAL}", TITLE,
                 f"Officers were called at about 11pm on Friday. {CRITICAL}", F,
                 "numbers changed: 10pm → 11pm", id="time-of-call-changed"),
    pytest.param(STAB_TITLE, STAB, "Man, 24, stabbed in Walthamstow", STAB, F, "numbers added: 24",
                 id="retitle-adds-age"),
    # --- quotes, places, names ---------------------------------------------------------------------------------------
    pytest.param(TITLE, BODY, TITLE, f"{BODY} {QUOTE}", F, "quote added", id="quote-added"),
    pytest.param(TITLE, f"{BODY} {QUOTE}", TITLE, f"{BODY} {_edit('who saw', 'with dashcam footage of', QUOTE)}", F,
                 "quote changed", id="quote-changed"),
    pytest.param(TITLE, f"{BODY} {QUOTE}", TITLE, BODY, F, "quote removed", id="quote-removed"),
    pytest.param(TITLE, BODY, "Man 'fighting for his life' after being shot by police in Walthamstow", BODY, F,
                 "quote added", id="single-quoted-title-quote"),
    pytest.param("Man shot by police", BODY, "Man shot by police", _edit("Walthamstow", "Leyton"), F,
                 "places changed: Walthamstow → Leyton", id="place-changed"),
    pytest.param(TITLE, BODY, TITLE, f"{BODY} Officers also searched an address in Leyton.", F,
                 "places added: Leyton", id="place-added"),
    pytest.param(TITLE, BODY, TITLE, f"{BODY} {NAMED}", F, "names added: Jordan Pike", id="name-added"),
    pytest.param(TITLE, f"{BODY} {NAMED}", TITLE, BODY, F, "names removed: Jordan Pike", id="name-removed"),
    pytest.param(TITLE, f"{LEAD} Officers were called on Friday.", TITLE, f"{LEAD} Officers were called on Saturday.",
                 F, "names changed: Friday → Saturday", id="day-changed"),
    # --- titles and the lean towards factual -------------------------------------------------------------------------
    pytest.param(STAB_TITLE, STAB, "Man stabbed in Walthamstow dies", STAB, F, "casualty words added: dead",
                 id="retitle-adds-death"),
    pytest.param(TITLE, BODY, TITLE, f"{BODY} Neighbours described hearing screams before the officers went inside.",
                 F, "new words in text: ", id="new-content-words-in-text"),
    # --- cosmetic: surface -------------------------------------------------------------------------------------------
    pytest.param(TITLE, BODY, TITLE, BODY.replace(". ", ".   ").replace("a house", "a  house") + "\n", C,
                 "only punctuation, casing or whitespace changed", id="whitespace-only"),
    pytest.param(TITLE, BODY, TITLE.upper(), BODY, C, "only punctuation, casing or whitespace changed",
                 id="casing-only"),
    pytest.param(TITLE, f'{BODY} "It was terrifying," said one neighbour.', TITLE,
                 f"{BODY} “It was terrifying,” said one neighbour.", C,
                 "only punctuation, casing or whitespace changed", id="curly-vs-straight-quotes"),
    pytest.param(TITLE, _edit("Walthamstow, east London", "Walthamstow - east London"), TITLE,
                 _edit("Walthamstow, east London", "Walthamstow – east London"), C,
                 "only punctuation, casing or whitespace changed", id="dashes-and-commas"),
    pytest.param(TITLE, f"{BODY} Det. Insp. J. Smith said it was a shocking incident.", TITLE,
                 f"{BODY} Det Insp J Smith said it was a shocking incident.", C,
                 "only punctuation, casing or whitespace changed", id="abbreviation-full-stops"),
    pytest.param(TITLE, f"{BODY} More than 1,000 people live on the estate.", TITLE,
                 f"{BODY} More than 1000 people live on the estate.", C,
                 "only punctuation, casing or whitespace changed", id="thousands-separator"),
    # --- cosmetic: boilerplate and links -----------------------------------------------------------------------------
    pytest.param(TITLE, f"{BODY}\nUpdated: 10:32", TITLE, f"{BODY}\nUpdated: 10:45", C, "only boilerplate changed",
                 id="updated-stamp-changed"),
    pytest.param(TITLE, f"{BODY} Last updated 24 October 2025, 10:32 BST", TITLE,
                 f"{BODY} Last updated 25 October 2025, 09:15 BST", C, "only boilerplate changed",
                 id="last-updated-stamp-changed"),
    pytest.param(TITLE, BODY, TITLE, f"{BODY}\nShare this article", C, "only boilerplate changed",
                 id="share-this-article-added"),
    pytest.param(TITLE, BODY, TITLE, f"{BODY}\nSign up to our newsletter for the latest news from east London.", C,
                 "only boilerplate changed", id="newsletter-added"),
    pytest.param(TITLE, f"{BODY}\n© 2024 East London Echo. All rights reserved.", TITLE,
                 f"{BODY}\n© 2025 East London Echo Ltd. All rights reserved.", C, "only boilerplate changed",
                 id="copyright-changed"),
    pytest.param(TITLE, BODY, TITLE, f"{BODY}\nRead more: Two men charged over Leyton stabbing", C,
                 "only boilerplate changed", id="read-more-link-added"),
    pytest.param(TITLE, BODY, TITLE, f"By a Capital Press Association reporter\n{BODY}", C, "only boilerplate changed",
                 id="byline-added"),
    pytest.param(TITLE, f"{BODY} {LINK}", TITLE, f"{BODY} {LINK.replace('utm_source=rss', 'utm_source=twitter')}", C,
                 "only links changed", id="utm-parameters-changed"),
    pytest.param(STAB_TITLE, STAB, f"LIVE: {STAB_TITLE} | East London Echo", STAB, C, "only boilerplate changed",
                 id="title-label-and-site-name"),
    # --- cosmetic: rewording -----------------------------------------------------------------------------------------
    pytest.param(STAB_TITLE, STAB, "Walthamstow stabbing: man hurt", STAB, C, "retitled with the same facts",
                 id="retitle-same-facts"),
    pytest.param(TITLE, f"{LEAD} Two men were taken to hospital.", TITLE, f"{LEAD} 2 men were taken to hospital.", C,
                 "reworded with the same facts", id="number-word-to-digits"),
    pytest.param(TITLE, BODY, TITLE, _edit("taken to hospital", "taken to a hospital"), C,
                 "reworded with the same facts", id="same-words-reworded"),
    pytest.param(TITLE, BODY, TITLE, f"{LEAD} {CORDON} {CRITICAL}", C, "sentences reordered", id="reordered"),
    pytest.param(TITLE, f"{BODY} The street is popular with families.", TITLE, BODY, C,
                 "sentences removed with no facts in them", id="colour-sentence-removed"),
    pytest.param(TITLE, BODY, TITLE, BODY, C, "no change", id="identical"),
]


@pytest.mark.parametrize(("old_title", "old_text", "new_title", "new_text", "kind", "reason"), CASES)
def test_classification(old_title: str, old_text: str, new_title: str, new_text: str, kind: RevisionKind,
                        reason: str) -> None:
    """Each signal makes a revision factual, and surface-only edits leave it cosmetic, with a reason that says why."""
    revision = classify_revision(old_title, old_text, new_title, new_text)
    assert revision.kind is kind, revision
    assert reason in revision.reason, revision


@pytest.mark.parametrize(
    ("old_title", "old_text", "new_title", "new_text", "added", "removed"),
    [
        pytest.param(TITLE, BODY, TITLE, _edit("he is in a critical", "he is now in a stable"),
                     ("He was taken to hospital, where he is now in a stable condition.",), (CRITICAL,),
                     id="changed-sentence"),
        pytest.param(STAB_TITLE, STAB, "Walthamstow stabbing: man hurt", STAB,
                     ("Walthamstow stabbing: man hurt",), (STAB_TITLE,), id="title-counts-as-a-sentence"),
        pytest.param(TITLE, f"{BODY} {LINK}", TITLE,
                     f"{BODY}\n{LINK.replace('rss', 'x')}\nShare this article\nUpdated: 10:45", (), (),
                     id="boilerplate-and-links-are-never-listed"),
        pytest.param(TITLE, BODY, TITLE, f"{BODY}  He   has been named as “Jordan Pike”.",
                     ("He has been named as “Jordan Pike”.",), (), id="added-as-written"),
        pytest.param(TITLE, f"{BODY} {NAMED} {NAMED}", TITLE, f"{LEAD}   {CORDON}", (), (CRITICAL, NAMED),
                     id="removed-once-in-order"),
    ],
)
def test_diff(old_title: str, old_text: str, new_title: str, new_text: str, added: tuple[str, ...],
              removed: tuple[str, ...]) -> None:
    """The diff lists whole sentences as written, each once, in order, and leaves out boilerplate and links."""
    revision = classify_revision(old_title, old_text, new_title, new_text)
    assert (revision.added, revision.removed) == (added, removed)


def test_diff_is_compact() -> None:
    """At most MAX_LISTED sentences are listed, each cut to MAX_SENTENCE_CHARS ending in an ellipsis."""
    long = "Officers " + "searched the house and the garden " * 20 + "for hours."
    extra = " ".join(f"Officers searched garden number {n}." for n in range(20))
    revision = classify_revision(TITLE, BODY, TITLE, f"{BODY} {long} {extra}")
    assert len(revision.added) == MAX_LISTED
    assert len(revision.added[0]) == MAX_SENTENCE_CHARS
    assert revision.added[0].endswith("…")
