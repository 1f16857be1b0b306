"""MinHash signatures and LSH bands of story identity (design §2.3): copies found, look-alikes not, stable bytes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import datasketch
import datasketch.lsh
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.dedup import shingles
from services.dedup.shingles import DEFAULT_THRESHOLD, MIN_WORDS, NUM_PERM

ROOT = Path(__file__).resolve().parents[3]

INTRO = (
    "A man was shot dead and two teenagers were wounded outside a convenience store in Millbrook late on Saturday, "
    "police said."
)
# An agency report as the wire sends it, after its first sentence (INTRO); long enough for a new first sentence
# and a sign-off to leave it above the threshold, as copies of full reports are.
BODY = (
    "Officers were called to the Quick Stop on Alder Avenue at about 11:40 p.m. after several people reported hearing "
    "gunfire near the parking lot. They found a 34-year-old man lying beside a pickup truck with a gunshot wound to "
    "the chest. Paramedics took him to Millbrook General Hospital, where he was pronounced dead shortly after "
    "midnight. Two boys, aged 16 and 17, were found inside the store with wounds to their legs. Both were listed in "
    "stable condition on Sunday morning, according to a hospital spokeswoman. Police Chief Andrea Whitcomb told "
    "reporters that investigators believe the shooting began as an argument between two groups of young men who "
    "had gathered in the lot after a high school football game across the street. \"This was not a random act, "
    "but it put a lot of innocent people in danger,\" Whitcomb said. \"We had families in that store buying milk "
    "and bread.\" Detectives recovered more than a dozen shell casings from the pavement and were reviewing "
    "footage from cameras mounted on the front of the store and on a bank building next door. A silver sedan was "
    "seen leaving the lot at high speed moments after the shots were fired, witnesses told officers. No arrests "
    "had been made by Sunday afternoon, and police had not released the name of the man who died, saying his "
    "relatives were still being told. The store's owner, Harjit Sandhu, said he had run the business for nineteen "
    "years and had never seen violence like it. He closed the shop on Sunday and said he would decide later in the "
    "week whether to reopen. Neighbors gathered at the edge of the police tape through the night, some still "
    "wearing the colors of the football team. Several said the lot had become a meeting place for teenagers on "
    "weekend nights and that they had asked the city for more lighting and patrols. City council member Loretta "
    "Banks said she would ask for an emergency meeting with the police department and school officials on Monday. "
    "\"Our kids should be able to go to a game and get home safe,\" she said. The school district said counselors "
    "would be available at Millbrook High School when classes resume. It was the third shooting in the city this "
    "month and the second to leave someone dead, according to police records. Last weekend a woman was wounded by "
    "a stray bullet while sitting on her porch on Cedar Lane, about a mile from the store. Police said they had no "
    "evidence that the two shootings were connected but had not ruled it out. Investigators asked anyone who was "
    "in the area between 11 p.m. and midnight, or who has video from a phone or a car camera, to call the "
    "department's tip line. Tips can be left anonymously, and a reward of up to $2,500 is available for "
    "information leading to an arrest."
)
WIRE = f"{INTRO} {BODY}"
# The same report as an outlet runs it: its own first sentence, its own sign-off, its site's copyright line.
OUTLET = (
    f"MILLBROOK — One man is dead and two students are hurt after gunfire outside a store. {BODY} "
    "Staff writer Dana Ortiz contributed. "
    "Copyright 2025 Millbrook Courier. All rights reserved."
)


def report(town: str, street: str, age: int, day: str, time: str, hospital: str, condition: str, chief: str) -> str:
    """A short shooting report in one house style; only its details change."""
    return (
        f"Police in {town} are investigating after a {age}-year-old man was shot on {street} on {day} night. "
        f"Officers responded to reports of shots fired in the area at about {time} and found the man with a "
        f"gunshot wound. He was taken to {hospital}, where he was listed in {condition} condition. "
        f"Investigators have not said what led to the shooting or whether they are looking for a suspect. "
        f"\"We are asking anyone who saw something on {street} to come forward,\" {chief} said in a statement. "
        f"No arrests have been made. The shooting remains under investigation, and anyone with information is "
        f"asked to call the {town} Police Department."
    )


FIRST = report("Riverton", "Oak Street", 27, "Friday", "10:15 p.m.", "St. Luke's Medical Center", "critical",
               "Sgt. Paul Brennan")
SECOND = report("Lakeside", "Fifth Avenue", 41, "Tuesday", "2:30 a.m.", "Lakeside Regional Hospital", "stable",
                "Lt. Maria Cordova")


def sig(text: str, title: str = "") -> shingles.Signature:
    found = shingles.signature(title, text)
    assert found is not None
    return found


def exact(a: str, b: str) -> float:
    sa, sb = shingles.shingle_set(shingles.words(a)), shingles.shingle_set(shingles.words(b))
    return len(sa & sb) / len(sa | sb)


def test_identical_texts_have_similarity_one() -> None:
    """The same text, even under another title and with other spacing and case, is similarity 1.0."""
    assert shingles.similarity(sig(WIRE, "Man killed"), sig(WIRE.upper().replace(" ", "  "), "Shooting")) == 1.0


def test_an_agency_copy_with_its_own_intro_and_sign_off_is_a_near_copy() -> None:
    """An outlet's run of a wire report (new first sentence, sign-off, copyright) is above the threshold and banded."""
    wire, outlet = sig(WIRE), sig(OUTLET)
    assert exact(WIRE, OUTLET) >= DEFAULT_THRESHOLD
    assert shingles.similarity(wire, outlet) >= DEFAULT_THRESHOLD
    shared = set(shingles.band_keys(wire, DEFAULT_THRESHOLD)) & set(shingles.band_keys(outlet, DEFAULT_THRESHOLD))
    assert shared


def test_two_shootings_reported_in_one_house_style_are_not_near_copies() -> None:
    """Two reports from one template with different details stay well below the threshold and share no band."""
    first, second = sig(FIRST), sig(SECOND)
    assert len(shingles.words(FIRST)) >= MIN_WORDS
    assert exact(FIRST, SECOND) < 0.5
    assert shingles.similarity(first, second) < DEFAULT_THRESHOLD
    assert not set(shingles.band_keys(first, DEFAULT_THRESHOLD)) & set(shingles.band_keys(second, DEFAULT_THRESHOLD))


def test_site_chrome_sentences_do_not_count() -> None:
    """Sign-in prompts, newsletter offers and copyright lines around a text leave its signature unchanged."""
    chrome = (
        "Already a subscriber? Click on the button below to set up your account or log in. {body} Sign up for our "
        "newsletter and have the top headlines delivered right to your inbox. Copyright 2025 Cox Media Group."
    )
    assert shingles.similarity(sig(WIRE), sig(chrome.format(body=WIRE))) == 1.0


def test_short_texts_and_chrome_only_pages_get_no_signature() -> None:
    """Under MIN_WORDS words (chrome not counted) there is no signature: too short to tell a copy from a look-alike."""
    text = " ".join(f"word{n}" for n in range(MIN_WORDS))
    assert shingles.signature("", text) is not None
    assert shingles.signature("", text.rsplit(" ", 1)[0]) is None
    assert shingles.signature("A long title does not count " * 20, "Shots fired.") is None
    sign_in_page = (
        "Sign in using your account with: {* loginWidget *} Sign in using your profile. Welcome back. Please sign "
        "in. By submitting your registration information, you agree to our Terms of Service and Privacy Policy. "
        "Already have an account? We have sent a confirmation email to {* data_emailAddress *}. Please check your "
        "email and click on the link to activate your account. Thank you for registering! We look forward to "
        "seeing you on [website] frequently. Visit us and sign in to update your profile, receive the latest news "
        "and keep up to date with mobile alerts. Click here to return to the page you were visiting."
    )
    assert len(sign_in_page.split()) >= MIN_WORDS
    assert shingles.signature("Four shot outside a bar", sign_in_page) is None


def test_encode_then_decode_gives_the_same_signature() -> None:
    """A signature survives Redis as 4 bytes per hash value: same values, same similarity, same band keys."""
    original = sig(WIRE)
    data = shingles.encode(original)
    assert isinstance(data, bytes)
    assert len(data) == 4 * NUM_PERM
    back = shingles.decode(data)
    assert np.array_equal(back, original)
    assert shingles.similarity(back, sig(OUTLET)) == shingles.similarity(original, sig(OUTLET))
    assert shingles.band_keys(back, DEFAULT_THRESHOLD) == shingles.band_keys(original, DEFAULT_THRESHOLD)


@pytest.mark.parametrize("data", [b"", b"\x00\x01\x02", b"\x00" * 5], ids=["empty", "three-bytes", "five-bytes"])
def test_decode_refuses_bytes_that_are_not_a_signature(data: bytes) -> None:
    """Bytes that are not whole hash values raise ValueError rather than making a wrong signature."""
    with pytest.raises(ValueError, match="multiple of 4"):
        shingles.decode(data)


def test_signatures_are_the_same_in_another_process() -> None:
    """Nothing random from the environment enters a signature: another interpreter, other hash seed, same bytes."""
    code = (
        "import sys; from services.dedup import shingles; "
        "sys.stdout.write(shingles.encode(shingles.signature('', sys.stdin.read())).hex())"
    )
    env = {"PYTHONHASHSEED": "4242", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], input=WIRE, capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    assert done.stdout == shingles.encode(sig(WIRE)).hex()


def test_signatures_estimate_jaccard_like_the_reference_minhash_and_stay_put() -> None:
    """rensa's signature estimates the true Jaccard similarity as closely as datasketch's reference MinHash does, on
    pairs from identical to unrelated; and its bytes never change (they are stored)."""
    shortened = " ".join(WIRE.split()[: len(WIRE.split()) * 2 // 3])
    for a, b in ((WIRE, WIRE), (WIRE, OUTLET), (WIRE, shortened), (FIRST, SECOND), (WIRE, FIRST)):
        reference = []
        for text in (a, b):
            minhash = datasketch.MinHash(num_perm=NUM_PERM)
            minhash.update_batch([s.encode() for s in shingles.shingle_set(shingles.words(text))])
            reference.append(minhash)
        true = exact(a, b)
        # Both estimate the same quantity with the same number of values: three standard deviations apart at most.
        tolerance = 3 * max((true * (1 - true) / NUM_PERM) ** 0.5, 1 / NUM_PERM)
        assert abs(shingles.similarity(sig(a), sig(b)) - true) <= tolerance
        assert abs(reference[0].jaccard(reference[1]) - true) <= tolerance
    # Golden bytes: a rensa release that changed its digests would orphan every stored signature and band key.
    assert shingles.encode(sig(WIRE))[:16].hex() == GOLDEN_PREFIX
    assert shingles.ALGORITHM == "rensa-r2"


GOLDEN_PREFIX = "31b91a05712ca81096c727087a331b48"


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_band_layout_is_datasketchs_choice(threshold: float) -> None:
    """`band_params` picks the bands datasketch's MinHashLSH would pick with the same weights."""
    optimal = getattr(datasketch.lsh, "_optimal_param", None)
    if optimal is None:
        pytest.skip("datasketch no longer has its private _optimal_param to compare with")
    weight = shingles.FALSE_NEGATIVE_WEIGHT
    assert shingles.band_params(threshold, 128) == optimal(threshold, 128, 1 - weight, weight)


def test_band_keys_are_short_hex_one_per_band() -> None:
    """One 16-hex-digit key per band, different bands giving different keys; a wrong num_perm is refused."""
    keys = shingles.band_keys(sig(WIRE), DEFAULT_THRESHOLD)
    bands, _ = shingles.band_params(DEFAULT_THRESHOLD, NUM_PERM)
    assert len(keys) == len(set(keys)) == bands
    assert all(len(key) == 16 and int(key, 16) >= 0 for key in keys)
    assert shingles.band_keys(sig(WIRE), DEFAULT_THRESHOLD, NUM_PERM) == keys
    with pytest.raises(ValueError, match="hash values"):
        shingles.band_keys(sig(WIRE), DEFAULT_THRESHOLD, NUM_PERM // 2)


CHROME_SAMPLES = (
    "all rights reserved", "copyright 2025", "© 2025 wcnc", "may not be published, broadcast",
    "rewritten or redistributed", "signing up is free", "log in to continue", "subscribe today",
    "our newsletter", "email notifications", "your notification settings", "verification email sent",
    "confirmation email sent", "your registration information", "thank you for registering",
    "already have an account?", "need an account?", "privacy policy", "terms of use", "enable javascript",
    "premium content", "digital pass", "you have enjoyed your preview", "owner of this article",
    "thank you for reading", "click here", "straight to your inbox", "{* loginwidget *}", "visit [website]",
)


def _top_level_alternatives(pattern: str) -> list[str]:
    parts: list[str] = []
    depth, current = 0, ""
    for char in pattern:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "|" and depth == 0:
            parts, current = [*parts, current], ""
        else:
            current += char
    return [*parts, current]


def test_every_chrome_phrase_has_a_hint_so_the_quick_check_never_skips_chrome() -> None:
    """Each phrase of the chrome pattern has a sample here, and each sample contains one of the literal hints that
    decide whether the pattern runs at all; a phrase added without a hint fails this test."""
    alternatives = _top_level_alternatives(shingles._CHROME.pattern)
    assert len(alternatives) == len(CHROME_SAMPLES)
    for alternative, sample in zip(alternatives, CHROME_SAMPLES, strict=True):
        assert re.search(alternative, sample), (alternative, sample)
        assert any(hint in sample for hint in shingles._CHROME_HINTS), sample
        assert shingles.words(f"police said. {sample}. officers left.") == ["police", "said", "officers", "left"]


def test_compact_signatures_are_half_the_bytes_and_estimate_the_same() -> None:
    """The index stores 16 bits of each value: half of `encode`, and the estimate stays within a hash value's
    worth of the full one (two different minima agree in 16 bits once in 65,536)."""
    wire, outlet, first = sig(WIRE), sig(OUTLET), sig(FIRST)
    assert len(shingles.compact(wire)) == len(shingles.encode(wire)) // 2
    for a, b in ((wire, wire), (wire, outlet), (wire, first)):
        assert abs(shingles.compact_similarity(a, shingles.compact(b)) - shingles.similarity(a, b)) <= 1 / NUM_PERM
    with pytest.raises(ValueError, match="compact signature"):
        shingles.compact_similarity(wire, shingles.compact(wire)[:-2])


def test_packed_bands_are_the_band_keys_as_bytes() -> None:
    """What the stage sends to Redis is the band keys, 8 bytes each, in band order; a key depends on its band's
    values only."""
    packed = shingles.packed_bands(sig(WIRE), DEFAULT_THRESHOLD)
    assert packed.hex() == "".join(shingles.band_keys(sig(WIRE), DEFAULT_THRESHOLD))
    # Two signatures equal in the first band's values only share that band's key and no other.
    bands, rows = shingles.band_params(DEFAULT_THRESHOLD, NUM_PERM)
    other = sig(WIRE).copy()
    other[rows:] += np.uint32(1)
    theirs = shingles.band_keys(other, DEFAULT_THRESHOLD)
    ours = shingles.band_keys(sig(WIRE), DEFAULT_THRESHOLD)
    assert [a == b for a, b in zip(ours, theirs, strict=True)] == [True] + [False] * (bands - 1)


@given(st.text(alphabet=st.sampled_from("ab1_é '.-,\n"), max_size=60) | st.text(max_size=60))
def test_words_are_split_as_the_greedy_pattern_splits_them(text: str) -> None:
    """The word pattern is possessive for speed; it must find exactly what the plain greedy pattern finds, or every
    stored signature would change."""
    assert shingles._WORD.findall(text) == re.findall(r"\w+(?:['.-]\w+)*", text)
