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
  for a copy at 0.9 with probability 0.009, against 0.043 with 128; 1 KiB stored instead of 512 bytes.
- The title is not shingled: outlets rewrite or suffix headlines (" - WALB.com") and keep the copy; shingling it
  loses one copy in eight at 0.9 and gains no precision.
- Dropping chrome sentences takes the flagged pairs at 0.9 from 76 (30% of one incident) to 24.
- Texts under `MIN_WORDS` words after that get no signature (252 of 3,179): most are crawl failures (a paywall or
  a sign-in page, the same on every outlet of one network) or briefs too short to tell a copy from two reports in
  one house style; 20 or 40 words still let two such pages through. Exact copies of them are still caught by the
  stage's story key.
- Band layout: datasketch's criterion (see `band_params`) weighted towards recall, as the stage checks every
  candidate's estimate anyway; no pair at or above any threshold was missed by banding.
- The MinHash itself is rensa's `RMinHash` (Rust): about 20 µs a signature where a numpy MinHash takes 400, which
  is most of what the dedup stage spends per update. Its algorithm version and our seed are pinned (`ALGORITHM`,
  `SEED`) and part of every band key, and a golden-bytes test fails if a rensa release changes the digests: the
  same text gives the same signature in every process and every release, and stored signatures and band keys stay
  comparable. Changing a constant here means a new index (the old one expires with the dedup window).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import numpy as np
from rensa import RMinHash

from services.identity import normalise_text

NUM_PERM = 256
SHINGLE_WORDS = 4
MIN_WORDS = 50
DEFAULT_THRESHOLD = 0.9  # measured, see the module doc
# A missed candidate is a copy published as news; a needless one costs the stage one signature read and compare.
FALSE_NEGATIVE_WEIGHT = 0.98
SEED = 1
ALGORITHM = f"rensa-r{RMinHash.ALGORITHM_VERSION}"  # rensa numbers changes to its digests; 2 when this was measured
_DTYPE = np.dtype("<u4")  # how `encode` writes the uint32 hash values: little-endian whatever the host

Signature = np.ndarray  # NUM_PERM uint32 MinHash values, read-only

# "o'brien", "st.louis" and "17-year-old" stay one word each. Possessive: nothing follows a word that could take
# characters back from it, so the matches are those of the greedy pattern, found without backtracking bookkeeping.
_WORD = re.compile(r"\w++(?:['.-]\w++)*+")
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
# One literal that each `_CHROME` phrase contains: a text holding none of them has no chrome sentence, and these
# substring tests take a tenth of the time of the pattern (which the stage would otherwise run on every text).
_CHROME_HINTS = (
    "rights reserved", "copyright", "©", "may not be published", "redistributed", "sign", "log", "subscri",
    "newsletter", "notification", "verification", "confirmation email", "registration", "thank you for",
    "an account", "privacy policy", "terms of", "javascript", "premium", "digital pass", "preview",
    "owner of this article", "click here", "your inbox", "{*", "[website]",
)


def words(text: str, *, drop_chrome: bool = True, normalised: str | None = None) -> list[str]:
    """The words of `text` that signatures are made of: normalised, sentences of site chrome dropped.

    `normalised`: `services.identity.normalise_text(text)`, when the caller has it already.
    """
    folded = normalise_text(text) if normalised is None else normalised
    if drop_chrome and any(map(folded.__contains__, _CHROME_HINTS)):
        folded = " ".join(s for s in _SENTENCE_END.split(folded) if not _CHROME.search(s))
    return _WORD.findall(folded)


def shingle_list(found: list[str], k: int = SHINGLE_WORDS) -> list[str]:
    """The `k`-word shingles of a list of `words`, in order, repeats included (empty when it has fewer than `k`)."""
    return [" ".join(found[i : i + k]) for i in range(len(found) - k + 1)]


def shingle_set(found: list[str], k: int = SHINGLE_WORDS) -> set[str]:
    """The distinct `k`-word shingles of a list of `words`: the set a signature estimates Jaccard similarity on."""
    return set(shingle_list(found, k))


def signature(title: str, text: str, num_perm: int = NUM_PERM, *, normalised: str | None = None) -> Signature | None:
    """The MinHash signature of an update's text, or None when the text is too short to judge (< `MIN_WORDS`).

    `title` is accepted so callers pass the whole update, but is not part of the signature (see the module doc).
    `normalised`: as for `words`.
    """
    del title
    return signatures([text], num_perm, normalised=None if normalised is None else [normalised])[0]


def signatures(texts: list[str], num_perm: int = NUM_PERM, *,
               normalised: list[str] | None = None) -> list[Signature | None]:
    """`signature` of each text, computed together (one MinHash call for all of them): what a batch costs.

    `normalised`: `services.identity.normalise_text` of each text, when the caller has them already.
    """
    found = [words(text, normalised=None if normalised is None else normalised[n]) for n, text in enumerate(texts)]
    judged = [n for n, text_words in enumerate(found) if len(text_words) >= MIN_WORDS]
    result: list[Signature | None] = [None] * len(texts)
    if not judged:
        return result
    hashes = [shingle_hashes(found[n]) for n in judged]
    # A repeated shingle changes no minimum: no need to make sets.
    offsets = np.zeros(len(hashes) + 1, np.uint64)
    np.cumsum([len(h) for h in hashes], out=offsets[1:])
    digests = RMinHash.digest_matrix_from_flat_token_hashes(np.concatenate(hashes), offsets, num_perm, SEED)
    matrix = _frozen(np.array(digests.to_rows(), dtype=np.uint32))
    for row, n in enumerate(judged):
        result[n] = matrix[row]
    return result


@lru_cache(maxsize=1 << 17)  # a news vocabulary: most words of a text were hashed for an earlier one
def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


_SHINGLE_MULTIPLIERS = np.random.default_rng(0x5EED).integers(1, 2**64, SHINGLE_WORDS, dtype=np.uint64, endpoint=False)
_SHINGLE_MULTIPLIERS |= np.uint64(1)


def shingle_hashes(found: list[str]) -> np.ndarray:
    """A 64-bit hash of each `SHINGLE_WORDS`-word shingle of `found` (in order, repeats included), computed from the
    words' hashes with one multilinear combination: equal shingles hash equal, different ones collide about once in
    2⁶⁴. What the MinHash is taken of; it stands for `shingle_set`, at a fraction of the cost of joining strings."""
    count = len(found) - SHINGLE_WORDS + 1
    if count <= 0:
        return np.zeros(0, np.uint64)
    words_hashed = np.fromiter(map(_word_hash, found), dtype=np.uint64, count=len(found))
    hashes: np.ndarray = words_hashed[:count] * _SHINGLE_MULTIPLIERS[0]
    for position in range(1, SHINGLE_WORDS):
        hashes += words_hashed[position : position + count] * _SHINGLE_MULTIPLIERS[position]
    return hashes


def _frozen(values: np.ndarray) -> Signature:
    values.flags.writeable = False
    return values


def similarity(a: Signature, b: Signature) -> float:
    """The estimated Jaccard similarity of the two texts' shingle sets, in [0, 1]: the share of equal minima.

    Raises:
        ValueError: The signatures differ in length and cannot be compared.
    """
    if len(a) != len(b):
        raise ValueError(f"signatures of {len(a)} and {len(b)} hash values cannot be compared")
    return float(np.count_nonzero(a == b)) / len(a)


def encode(sig: Signature) -> bytes:
    """The signature's hash values as bytes (4 per value, little-endian): 1 KiB at `NUM_PERM` 256."""
    return sig.astype(_DTYPE).tobytes()


def decode(data: bytes) -> Signature:
    """The signature `encode` wrote.

    Raises:
        ValueError: `data` is empty or not a whole number of hash values.
    """
    if not data or len(data) % _DTYPE.itemsize:
        raise ValueError(f"a signature is a non-empty multiple of {_DTYPE.itemsize} bytes, got {len(data)}")
    return _frozen(np.frombuffer(data, dtype=_DTYPE).astype(np.uint32))


COMPACT = np.dtype("<u2")  # what an index keeps of each value: its low 16 bits, little-endian


def compact(sig: Signature) -> bytes:
    """The signature as an index stores it: the low bits of each value (`COMPACT`; b-bit MinHash, Li and König
    2010), half the bytes of `encode`. Two different minima agree there once in 65,536, which moves an estimate of
    similarity by about 0.00002: nothing against a threshold of 0.9."""
    return sig.astype(COMPACT).tobytes()  # the cast keeps the low bits


def compact_similarity(sig: Signature, stored: bytes) -> float:
    """`similarity` of a full signature and a `compact` one.

    Raises:
        ValueError: `stored` is not a compact signature of the same length.
    """
    if len(stored) != COMPACT.itemsize * len(sig):
        raise ValueError(f"a compact signature of {len(sig)} values is {COMPACT.itemsize * len(sig)} bytes, "
                         f"got {len(stored)}")
    return float(np.count_nonzero(sig.astype(COMPACT) == np.frombuffer(stored, dtype=COMPACT))) / len(sig)


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


@lru_cache(maxsize=64)
def _band_multipliers(bands: int, rows: int) -> np.ndarray:
    """One odd 64-bit multiplier per value of a band, and a salt per band, drawn from a seed named by the algorithm
    and the layout: keys of other layouts or algorithms never meet."""
    seed = int.from_bytes(hashlib.blake2b(f"{ALGORITHM}:{SEED}:{bands}x{rows}".encode(), digest_size=8).digest())
    drawn = np.random.default_rng(seed).integers(0, 2**64, size=(bands, rows + 1), dtype=np.uint64, endpoint=False)
    drawn |= np.uint64(1)
    drawn.flags.writeable = False
    return drawn


def packed_bands(sig: Signature, threshold: float) -> bytes:
    """The LSH band keys of `sig` for `threshold`, 8 bytes each, concatenated: texts sharing any are candidate
    near-copies.

    A band's key is a multilinear hash of its values (Σ valueᵢ·mᵢ + salt, modulo 2⁶⁴, with `_band_multipliers`):
    two different bands collide about once in 2⁶⁴, and a collision only makes a candidate, whose similarity is then
    checked. One numpy expression for all bands: a per-band cryptographic hash cost more than the signature.
    """
    return packed_bands_of([sig], threshold)[0]


def packed_bands_of(sigs: list[Signature], threshold: float) -> list[bytes]:
    """`packed_bands` of each signature (all of one length), in one numpy expression for all of them."""
    if not sigs:
        return []
    bands, rows = band_params(threshold, len(sigs[0]))
    multipliers = _band_multipliers(bands, rows)
    values = np.stack(sigs)[:, : bands * rows].astype(np.uint64).reshape(len(sigs), bands, rows)
    keys = (values * multipliers[:, :rows]).sum(axis=2, dtype=np.uint64) + multipliers[:, rows]
    packed = keys.astype(">u8").tobytes()
    size = bands * 8
    return [packed[n * size : (n + 1) * size] for n in range(len(sigs))]


def band_keys(sig: Signature, threshold: float, num_perm: int | None = None) -> list[str]:
    """`packed_bands` as 16-hex-digit strings, one per band.

    Raises:
        ValueError: `num_perm` is given and is not the signature's length.
    """
    if num_perm is not None and num_perm != len(sig):
        raise ValueError(f"signature has {len(sig)} hash values, not {num_perm}")
    packed = packed_bands(sig, threshold)
    return [packed[i : i + 8].hex() for i in range(0, len(packed), 8)]
