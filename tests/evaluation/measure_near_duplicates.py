"""Near-duplicate detection (services/dedup/shingles.py) measured on the gva-dev replay archive.

Run: `python -m tests.evaluation.measure_near_duplicates [ARCHIVE]` (default: /work/shared/corpora/gva-dev, or
$LIVEDESK_GVA_DEV). Internal evaluation only: the corpus is never shipped and this script is not collected by pytest.

Every entry of every snapshot is parsed by the poller's own parse boundary and named as the poller names it
(`entry_guid`), then joined to `truth.jsonl`. A pair is two entries from different sources; it is "same incident"
when truth gives both the same incident. No pair is sampled: exact Jaccard for all ~5M pairs comes from one sparse
matrix product (shingle incidence × its transpose), MinHash estimates for all pairs from a row-wise numpy
comparison of the signatures, and LSH candidates from grouping the band keys, so what banding misses is counted,
not estimated.

Columns of the main table, per threshold t:
    b×r       bands × rows chosen by `shingles.band_params`
    flagged   pairs the stage would call near-copies: sharing a band key and estimated similarity ≥ t
    prec      of those, same incident (a flagged pair of two incidents would drop one incident's facts)
    rec       flagged same-incident pairs / all same-incident pairs (low by nature: most reports are not copies)
    cand      LSH candidate pairs (what the stage fetches and compares)
    lsh_rec   flagged / pairs with estimated similarity ≥ t (what banding misses)
    exact     pairs with exact Jaccard ≥ t, and their precision; est_vs_exact: pairs on which the MinHash decision
              (estimate ≥ t) and the exact one (Jaccard ≥ t) disagree
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp  # a dependency of datasketch (the test extra)

from services.dedup import shingles
from services.identity import entry_guid, normalise_text
from services.poller.parse import parse_feed
from services.replay import read_archive

DEFAULT_ARCHIVE = Path(os.environ.get("LIVEDESK_GVA_DEV", "/work/shared/corpora/gva-dev"))
THRESHOLDS = [round(0.30 + 0.05 * i, 2) for i in range(13)]
WANTED_PRECISION = 0.98


@dataclass(frozen=True)
class Doc:
    source_id: str
    guid: str
    title: str
    text: str
    incident: str


def load(root: Path) -> list[Doc]:
    """Every entry of the archive with its incident; the last snapshot's version of an entry wins."""
    truth: dict[tuple[str, str], str] = {}
    for line in (root / "truth.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        truth[row["source_id"], row["guid"]] = row["incident"]
    archive = read_archive(root)
    docs: dict[tuple[str, str], Doc] = {}
    for snapshot in archive.snapshots:
        source = archive.sources[snapshot.source_id]
        parsed = parse_feed(snapshot.path.read_bytes(), feed=snapshot.source_id, base_url=source.url)
        for entry in parsed.entries:
            key = (snapshot.source_id, entry_guid(entry))
            if key in truth:
                docs[key] = Doc(*key, entry.title, entry.text, truth[key])
    missing = len(truth) - len(docs)
    if missing:
        print(f"warning: {missing} truth entries not found in the snapshots")
    return list(docs.values())


@dataclass
class Pairs:
    """Cross-source pairs (i < j) with a score, and the truth about them."""

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray
    same: np.ndarray


def cross_source(docs: list[Doc]) -> tuple[np.ndarray, np.ndarray]:
    sources = {s: n for n, s in enumerate(sorted({d.source_id for d in docs}))}
    incidents = {s: n for n, s in enumerate(sorted({d.incident for d in docs}))}
    return (np.array([sources[d.source_id] for d in docs]), np.array([incidents[d.incident] for d in docs]))


def exact_jaccard(sets: list[set[str] | None], src: np.ndarray, inc: np.ndarray, floor: float) -> Pairs:
    """Exact Jaccard ≥ `floor` of every cross-source pair of usable texts (None: no signature, never flagged)."""
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for n, found in enumerate(sets):
        for shingle in found or ():
            rows.append(n)
            cols.append(vocab.setdefault(shingle, len(vocab)))
    incidence = sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(len(sets), max(len(vocab), 1)))
    inter = sp.triu(incidence @ incidence.T, k=1).tocoo()
    size = np.array([len(s or ()) for s in sets])
    score = inter.data / (size[inter.row] + size[inter.col] - inter.data)
    keep = (score >= floor) & (src[inter.row] != src[inter.col])
    i, j = inter.row[keep], inter.col[keep]
    return Pairs(i, j, score[keep], inc[i] == inc[j])


def estimated(values: np.ndarray, usable: np.ndarray, src: np.ndarray, inc: np.ndarray, floor: float) -> Pairs:
    """MinHash-estimated similarity ≥ `floor` of every cross-source pair of usable texts."""
    found_i: list[np.ndarray] = []
    found_j: list[np.ndarray] = []
    found_s: list[np.ndarray] = []
    index = np.flatnonzero(usable)
    sub = values[index]
    for n in range(len(index) - 1):
        score = (sub[n + 1 :] == sub[n]).mean(axis=1)
        hit = np.flatnonzero(score >= floor)
        found_i.append(np.full(len(hit), index[n]))
        found_j.append(index[n + 1 + hit])
        found_s.append(score[hit])
    i, j, s = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)
    keep = src[i] != src[j]
    i, j = i[keep], j[keep]
    return Pairs(i, j, s[keep], inc[i] == inc[j])


def lsh_candidates(sigs: list[shingles.Signature | None], src: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Cross-source pairs sharing at least one band key at `threshold`."""
    buckets: defaultdict[str, list[int]] = defaultdict(list)
    for n, sig in enumerate(sigs):
        if sig is not None:
            for key in shingles.band_keys(sig, threshold):
                buckets[key].append(n)
    found: set[tuple[int, int]] = set()
    for members in buckets.values():
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                if src[members[a]] != src[members[b]]:
                    found.add((members[a], members[b]))
    return found


def as_set(pairs: Pairs, threshold: float) -> set[tuple[int, int]]:
    keep = pairs.score >= threshold
    return set(zip(pairs.i[keep].tolist(), pairs.j[keep].tolist(), strict=True))


def candidate_chance(similarity: float, bands: int, rows: int) -> float:
    """The chance that two signatures of this Jaccard similarity share a band key (the LSH S-curve)."""
    return float(1 - (1 - similarity**rows) ** bands)


def ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "  -  "


def variants(docs: list[Doc], src: np.ndarray, inc: np.ndarray, same_total: int, chosen: float) -> None:
    """The choices behind the defaults, by exact Jaccard: shingle length, title, chrome removal, minimum words."""
    k0, m0 = shingles.SHINGLE_WORDS, shingles.MIN_WORDS

    def body(d: Doc, chrome: bool = True) -> list[str]:
        return shingles.words(d.text, drop_chrome=chrome)

    def with_title(d: Doc) -> list[str]:
        return shingles.words(d.title) + body(d) if len(body(d)) >= m0 else []

    cases: list[tuple[str, int, int, Callable[[Doc], list[str]]]] = [
        (f"k=3 (min {m0} words)", 3, m0, body),
        (f"k={k0} (the default)", k0, m0, body),
        ("k=5", 5, m0, body),
        (f"k={k0}, title shingled too", k0, 0, with_title),
        (f"k={k0}, chrome kept", k0, m0, lambda d: body(d, chrome=False)),
        (f"k={k0}, min 20 words", k0, 20, body),
        (f"k={k0}, min 40 words", k0, 40, body),
    ]
    shown = sorted({0.5, 0.7, 0.8, 0.9, chosen})
    print("\nVariants by exact Jaccard (flagged pairs / precision / recall against same-incident pairs):")
    print(f"{'variant':32s} " + " ".join(f"{'t=' + format(t, '.2f'):>20s}" for t in shown))
    for label, k, min_words, tokens in cases:
        sets: list[set[str] | None] = []
        for d in docs:
            found = tokens(d)
            sets.append(shingles.shingle_set(found, k) if found and len(found) >= min_words else None)
        pairs = exact_jaccard(sets, src, inc, min(shown))
        cells = []
        for t in shown:
            hit = pairs.score >= t
            n, tp = int(hit.sum()), int((hit & pairs.same).sum())
            cells.append(f"{n:5d} {ratio(tp, n)} {tp / same_total:.3f}")
        print(f"{label:32s} " + " ".join(f"{c:>20s}" for c in cells))


def false_flag_chance(num_perm: int, jaccard: float, threshold: float) -> float:
    """The chance that a pair of this exact Jaccard similarity is estimated at `threshold` or more (binomial tail)."""
    need = math.ceil(threshold * num_perm - 1e-9)
    return sum(math.comb(num_perm, m) * jaccard**m * (1 - jaccard) ** (num_perm - m) for m in range(need, num_perm + 1))


def perms(docs: list[Doc], src: np.ndarray, inc: np.ndarray, sets: list[set[str] | None], threshold: float) -> None:
    """How far MinHash estimates stray from exact Jaccard with 64, 128 and 256 hash values, and what they cost."""
    exact = exact_jaccard(sets, src, inc, 0.3)
    print(
        f"\nnum_perm: ms per signature; over the pairs with exact or estimated similarity ≥ 0.3, the largest "
        f"|estimate − exact| and how many decisions at t = {threshold} differ from exact; the chance that a pair "
        f"at exact {threshold - 0.05:.2f} is estimated ≥ {threshold} (a follow-up taken for a copy)"
    )
    for num_perm in (64, 128, 256):
        t0 = time.perf_counter()
        sigs = [shingles.signature(d.title, d.text, num_perm) for d in docs]
        ms = (time.perf_counter() - t0) * 1000 / len(docs)
        usable = np.array([s is not None for s in sigs])
        values = np.stack([np.asarray(s) if s is not None else np.zeros(num_perm, np.uint32) for s in sigs])
        est = estimated(values, usable, src, inc, 0.3)
        keys = set(zip(exact.i.tolist(), exact.j.tolist(), strict=True))
        keys |= set(zip(est.i.tolist(), est.j.tolist(), strict=True))
        errors, flips = [], 0
        for a, b in keys:
            sa, sb = sets[a] or set(), sets[b] or set()
            truth = len(sa & sb) / len(sa | sb)
            guess = float((values[a] == values[b]).mean())
            errors.append(abs(guess - truth))
            flips += (guess >= threshold) != (truth >= threshold)
        print(
            f"  {num_perm:4d}: {ms:.2f} ms, max error {max(errors):.3f} over {len(keys)} pairs, {flips} decisions "
            f"differ, {false_flag_chance(num_perm, threshold - 0.05, threshold):.3f}"
        )


def main(root: Path) -> None:
    started = time.perf_counter()
    docs = load(root)
    loaded = time.perf_counter()
    src, inc = cross_source(docs)
    same_total = 0
    by_incident: defaultdict[int, list[int]] = defaultdict(list)
    for n, incident in enumerate(inc.tolist()):
        by_incident[incident].append(n)
    for members in by_incident.values():
        same_total += sum(1 for a in members for b in members if a < b and src[a] != src[b])

    t0 = time.perf_counter()
    sigs = [shingles.signature(d.title, d.text) for d in docs]
    per_sig_ms = (time.perf_counter() - t0) * 1000 / len(docs)
    usable = np.array([s is not None for s in sigs])
    values = np.stack(
        [np.asarray(s) if s is not None else np.zeros(shingles.NUM_PERM, np.uint32) for s in sigs]
    )
    sets = [
        shingles.shingle_set(shingles.words(d.text)) if s is not None else None for d, s in zip(docs, sigs, strict=True)
    ]

    print(
        f"archive {root}: {len(docs)} entries, {len(set(src.tolist()))} sources, {len(by_incident)} incidents "
        f"(parsed in {loaded - started:.1f} s)"
    )
    print(
        f"cross-source pairs: {len(docs) * (len(docs) - 1) // 2 - _same_source_pairs(src)}, "
        f"of them same incident: {same_total}"
    )
    print(
        f"signatures: k={shingles.SHINGLE_WORDS} words, num_perm={shingles.NUM_PERM}, "
        f"{per_sig_ms:.2f} ms per signature on average; {int((~usable).sum())} texts under "
        f"{shingles.MIN_WORDS} words after chrome removal get none"
    )

    floor = min(THRESHOLDS)
    exact = exact_jaccard(sets, src, inc, floor)
    est = estimated(values, usable, src, inc, floor)
    same_pairs = set(zip(est.i[est.same].tolist(), est.j[est.same].tolist(), strict=True))
    same_pairs |= set(zip(exact.i[exact.same].tolist(), exact.j[exact.same].tolist(), strict=True))

    print(
        f"\n{'t':>5s} {'b×r':>6s} {'flagged':>7s} {'same':>5s} {'prec':>6s} {'rec':>6s} {'cand':>6s} "
        f"{'lsh_rec':>7s} {'P(t)':>5s} {'P(t+.05)':>8s} | {'exact':>5s} {'prec':>6s} {'est_vs_exact':>12s}"
    )
    rows: list[tuple[float, int, int]] = []
    for t in THRESHOLDS:
        bands, r = shingles.band_params(t)
        candidates = lsh_candidates(sigs, src, t)
        above = as_set(est, t)
        flagged = above & candidates
        tp = len(flagged & same_pairs)
        exact_above = as_set(exact, t)
        exact_tp = len(exact_above & same_pairs)
        rows.append((t, len(flagged), tp))
        print(
            f"{t:5.2f} {f'{bands}×{r}':>6s} {len(flagged):7d} {tp:5d} {ratio(tp, len(flagged)):>6s} "
            f"{tp / same_total:6.3f} {len(candidates):6d} {ratio(len(flagged), len(above)):>7s} "
            f"{candidate_chance(t, bands, r):5.2f} {candidate_chance(min(t + 0.05, 1.0), bands, r):8.3f} | "
            f"{len(exact_above):5d} {ratio(exact_tp, len(exact_above)):>6s} {len(above ^ exact_above):12d}"
        )

    good = [row for row in rows if row[1] and row[2] / row[1] >= WANTED_PRECISION]
    if good:
        t, n, tp = min(good)
        print(
            f"\nlowest threshold with precision ≥ {WANTED_PRECISION}: t={t:.2f}: {n} flagged, precision "
            f"{ratio(tp, n)}, recall {tp / same_total:.3f}"
        )
    else:
        best = max(row[2] / row[1] for row in rows if row[1])
        at = [f"{row[0]:.2f}" for row in rows if row[1] and row[2] / row[1] == best]
        print(f"\nno threshold reaches precision {WANTED_PRECISION}; the best, {best:.3f}, at t = {', '.join(at)}")
    for t, n, tp in rows:
        if t == shingles.DEFAULT_THRESHOLD:
            print(
                f"chosen default (DEFAULT_THRESHOLD): t={t:.2f}: {n} flagged, precision {ratio(tp, n)}, "
                f"recall {tp / same_total:.3f}"
            )

    # What the table cannot say: whether a same-incident pair is a copy (safe to drop) or a follow-up with a new fact.
    words = [len(shingles.words(d.text)) for d in docs]
    exact_of = dict(zip(zip(exact.i.tolist(), exact.j.tolist(), strict=True), exact.score.tolist(), strict=True))
    order = np.argsort(-est.score)
    print("\nevery pair with estimated similarity ≥ 0.5 (est, exact, same incident, words, titles), to read:")
    for n in order[est.score[order] >= 0.5]:
        a, b = int(est.i[n]), int(est.j[n])
        mark = "*" if est.score[n] >= shingles.DEFAULT_THRESHOLD else " "
        print(
            f" {mark}{est.score[n]:.2f} {exact_of.get((a, b), 0.0):.2f} {'same' if est.same[n] else 'DIFF'} "
            f"{words[a]:4d}/{words[b]:<4d} {docs[a].source_id}: {docs[a].title[:45]!r} | "
            f"{docs[b].source_id}: {docs[b].title[:45]!r}"
        )
        if not est.same[n]:
            print(f"{'':23s}text: {normalise_text(docs[a].text)[:100]!r}")
    print("  (* at or above the default threshold)")

    perms(docs, src, inc, sets, shingles.DEFAULT_THRESHOLD)
    variants(docs, src, inc, same_total, shingles.DEFAULT_THRESHOLD)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


def _same_source_pairs(src: np.ndarray) -> int:
    counts = np.bincount(src)
    return int((counts * (counts - 1) // 2).sum())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_ARCHIVE)
