"""Story identity (design §2.3): MinHash signatures of a text and the LSH bands that find its near-copies. Pure.

A text is the set of its `SHINGLE_WORDS`-word shingles, after `services.identity.normalise_text` and after sentences
of site chrome (sign-in walls, newsletter prompts, copyright lines) are dropped; two texts are near-copies when the
Jaccard similarity of those sets, estimated by `similarity`, reaches a threshold. Two signatures that share any key
of `band_keys` are candidates, so an index needs one set per band key and no scan.

Choices, measured on the gva-dev replay archive (`python -m tests.evaluation.measure_near_duplicates`, 3,179
articles, 5M cross-source pairs; numbers from that run):
- `DEFAULT_THRESHOLD` 0.9. Every threshold from 0.35 up flags the same one pair of two incidents (two outlets'
  crawled pages that are only the same travel-link chrome: similarity 1.0, no threshold can help), so precision
  against the incidents is flat (0.96-0.97) and does not choose. What does: below 0.9 the flagged pairs start to
  include follow-ups that add a fact (at 0.85, a sister station's copy whose new lead says the child has died;
  at 0.5, "teen wanted" against "teen arrested"), and a duplicate's facts are dropped. At 0.9: 24 pairs
  flagged, 23 of one incident, all of them copies.
- `SHINGLE_WORDS` 4: 3 and 4 tie, 5 loses copies. `NUM_PERM` 256: a follow-up at true similarity 0.85 is taken
  for a copy at 0.9 with probability 0.009, against 0.043 with 128, for about the same time (~1.2 ms a signature,
  most of it hashing shingles) and 1 KiB stored instead of 512 bytes.
- The title is not shingled: outlets rewrite or suffix headlines (" - WALB.com") and keep the copy; shingling it
  loses one copy in eight at 0.9 and gains no precision.
- Dropping chrome sentences takes the flagged pairs at 0.9 from 76 (30% of one incident) to 24.
- Texts under `MIN_WORDS` words after that get no signature (252 of 3,179): most are crawl failures (a paywall or
  a sign-in page, the same on every outlet of one network) or briefs too short to tell a copy from two reports in
  one house style; 20 or 40 words still let two such pages through. Exact copies of them are still caught by the
  stage's story key.
- Band layout: datasketch's criterion (see `band_params`) weighted towards recall, as the stage checks every
  candidate's estimate anyway; no pair at or above any threshold was missed by banding.
- Everything that decides a signature is pinned here (datasketch's seed 1, its "affine32" scheme, SHA-1 of each
  shingle): the same text gives the same signature in every process and every release, and stored signatures and
  band keys stay comparable. Changing a constant here means a new index (the old one expires with the dedup
  window).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import numpy as np
from datasketch import LeanMinHash, MinHash
from datasketch.hashfunc import sha1_hash32  # pinned: the default today

from services.identity import normalise_text

NUM_PERM = 256
SHINGLE_WORDS = 4
MIN_WORDS = 50
DEFAULT_THRESHOLD = 0.9  # measured, see the module doc
# A missed candidate is a copy published as news; a needless one costs the stage one signature read and compare.
FALSE_NEGATIVE_WEIGHT = 0.98
SEED = 1  # datasketch's default, pinned: the permutations are drawn from numpy's RandomState(SEED)
SCHEME = "affine32"  # datasketch 2's default, pinned: hash values are uint32
_DTYPE = np.dtype("<u4")  # how `encode` writes the uint32 hash values: little-endian whatever the host

_WORD = re.compile(r"\w+(?:['.-]\w+)*")  # "o'brien", "st.louis" and "17-year-old" stay one word each
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Site chrome that crawled article bodies carry (or consist of): the same sentences on every page of an outlet's
# network, so two unrelated articles would look alike. Phrases specific enough not to occur in news copy.
_CHROME = re.compile(
    r"all rights reserved|copyright|©|may not be published, broadcast|rewritten,? or redistributed"
    r"|\bsign(?:ing)? (?:in|up)\b|\blog ?in\b|subscri(?:be|ber|ption)|newsletter|email notifications"
    r"|your notification|verification (?:email|message)|confirmation email|registration information"
    r"|thank you for registering|already have an account|need an account|privacy policy|terms of (?:service|use)"
    r"|javascript|premium (?:clicks|content)|digital pass|enjoyed your preview|owner of this article"
    r"|thank you for reading|click here|your inbox|\{\*|\[website\]"
)


def words(text: str, *, drop_chrome: bool = True) -> list[str]:
    """The words of `text` that signatures are made of: normalised, sentences of site chrome dropped."""
    sentences = _SENTENCE_END.split(normalise_text(text))
    return _WORD.findall(" ".join(s for s in sentences if not (drop_chrome and _CHROME.search(s))))


def shingle_set(found: list[str], k: int = SHINGLE_WORDS) -> set[str]:
    """The `k`-word shingles of a list of `words` (empty when it has fewer than `k`)."""
    return {" ".join(found[i : i + k]) for i in range(len(found) - k + 1)}


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> np.ndarray:
    """The permutations datasketch draws for SEED, drawn once rather than per signature (a fifth of its time)."""
    drawn: np.ndarray = MinHash(num_perm=num_perm, seed=SEED, scheme=SCHEME).permutations
    drawn.flags.writeable = False  # shared by every signature
    return drawn


def signature(title: str, text: str, num_perm: int = NUM_PERM) -> LeanMinHash | None:
    """The MinHash signature of an update's text, or None when the text is too short to judge (< `MIN_WORDS`).

    `title` is accepted so callers pass the whole update, but is not part of the signature (see the module doc).
    """
    del title
    found = words(text)
    if len(found) < MIN_WORDS:
        return None
    minhash = MinHash(
        num_perm=num_perm, seed=SEED, scheme=SCHEME, hashfunc=sha1_hash32, permutations=_permutations(num_perm)
    )
    minhash.update_batch([shingle.encode("utf-8") for shingle in shingle_set(found)])
    return LeanMinHash(minhash)


def similarity(a: LeanMinHash, b: LeanMinHash) -> float:
    """The estimated Jaccard similarity of the two texts' shingle sets, in [0, 1].

    Raises:
        ValueError: The signatures differ in length, seed or scheme and cannot be compared.
    """
    return float(a.jaccard(b))


def encode(sig: LeanMinHash) -> bytes:
    """The signature's hash values as bytes (4 per value, little-endian): 512 bytes at `NUM_PERM` 128."""
    if sig.seed != SEED or sig.scheme != SCHEME:
        raise ValueError(f"not a signature of this module (seed {sig.seed}, scheme {sig.scheme})")
    return bytes(np.asarray(sig.hashvalues).astype(_DTYPE).tobytes())


def decode(data: bytes) -> LeanMinHash:
    """The signature `encode` wrote.

    Raises:
        ValueError: `data` is empty or not a whole number of hash values.
    """
    if not data or len(data) % _DTYPE.itemsize:
        raise ValueError(f"a signature is a non-empty multiple of {_DTYPE.itemsize} bytes, got {len(data)}")
    values = np.frombuffer(data, dtype=_DTYPE).astype(np.uint32)
    return LeanMinHash(seed=SEED, hashvalues=values, scheme=SCHEME)


@lru_cache(maxsize=64)
def band_params(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band) for `threshold`: the b × r ≤ `num_perm` that minimises the weighted sum of the false
    positive area and the false negative area under the LSH S-curve 1 − (1 − s^r)^b (`FALSE_NEGATIVE_WEIGHT`).

    That is datasketch's own criterion (`MinHashLSH(weights=(1 - FALSE_NEGATIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT))`;
    its helper `datasketch.lsh._optimal_param` is private), computed here so band keys, which are stored, never
    change with a datasketch upgrade. The S-curve is a polynomial of degree b·r ≤ `num_perm`, so Gauss–Legendre
    quadrature with `num_perm` // 2 + 1 nodes integrates it exactly (datasketch integrates adaptively; the choices
    agree, a test checks).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if num_perm < 2:
        raise ValueError(f"num_perm must be at least 2, got {num_perm}")
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    below = threshold / 2 * (nodes + 1)  # the nodes mapped onto [0, threshold] and [threshold, 1]
    above = threshold + (1 - threshold) / 2 * (nodes + 1)
    best = (float("inf"), 0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            false_positive = threshold / 2 * float(weights @ (1 - (1 - below**r) ** b))
            false_negative = (1 - threshold) / 2 * float(weights @ ((1 - above**r) ** b))
            error = (1 - FALSE_NEGATIVE_WEIGHT) * false_positive + FALSE_NEGATIVE_WEIGHT * false_negative
            if error < best[0]:
                best = (error, b, r)
    return best[1], best[2]


def band_keys(sig: LeanMinHash, threshold: float, num_perm: int | None = None) -> list[str]:
    """The LSH band keys of `sig` for `threshold`: texts sharing any key are candidate near-copies.

    Each key is 16 hex digits of a SHA-256 over the band layout, the band index and the band's hash values, so
    keys made for different thresholds or signature lengths never collide.

    Raises:
        ValueError: `num_perm` is given and is not the signature's length.
    """
    length = len(sig.hashvalues)
    if num_perm is not None and num_perm != length:
        raise ValueError(f"signature has {length} hash values, not {num_perm}")
    bands, rows = band_params(threshold, length)
    values = np.asarray(sig.hashvalues).astype(_DTYPE)
    keys = []
    for index in range(bands):
        band = values[index * rows : (index + 1) * rows].tobytes()
        keys.append(hashlib.sha256(f"{bands}x{rows}:{index}:".encode() + band).hexdigest()[:16])
    return keys
