"""How well the tracker clusters entries into incidents and reads their facts, on a replay archive with ground truth.

Run: `python -m tests.evaluation.evaluate_tracker ARCHIVE [--redis-url URL] [--json] [--save-updates FILE |
--from-updates FILE]`. ARCHIVE is a replay archive
(design.md §4) that also holds `truth.jsonl` (one {"source_id", "guid", "incident"} per entry, the guid as the feed
serves it) and `incidents.json` (incident id → {"dead", "injured", "arrested", "city_or_county", "state",
"category", …}). Without --redis-url the server is LIVEDESK_REDIS_URL's, else an embedded Valkey. The replay runs
on a private key prefix that `services.replay.replay` deletes afterwards. Internal evaluation only: the corpora are
never shipped, and this script is not collected by pytest (tests/evaluation/test_scoring.py is).
On /work/shared/corpora/gva-dev (3,179 entries, 1,850 incidents, 1,738 of them with facts) the whole run takes
1.5–2 minutes on a local Redis, nearly all of it the replay (60–90 s measured).

For tuning the tracker: `--save-updates FILE` also writes the `updates` stream the replay's dedup stage produced
(one Update JSON per line); `--from-updates FILE` then skips poller and dedup and feeds those updates, in order,
straight to the tracker (`services.tracker.stage.process`, in this process, on a private prefix): the same figures
in about a minute, as long as dedup is unchanged.

What it measures (metric definitions in tests/evaluation/scoring.py):
- Matching: a predicted incident's `items` are matched to truth entries by (source_id, guid), else by the
  canonical link of the guid (a feed whose GUIDs proved unreliable has its entries named by canonical link). A
  truth entry in no predicted incident (it opened none: not about an incident, or no place named) is a cluster of
  its own. Truth entries absent from every snapshot are counted and also left alone.
- Clustering of truth entries → incidents: B-cubed and pairwise precision/recall/F1, next to the all-singletons
  floor and a title-overlap baseline: two entries are linked when they were reported within 3 days of each other
  and their titles share a rare content word, one in at most 1% of the archive's titles (content words: lower
  case, letters and digits, three characters or more, no stop word; `scoring.title_words`); clusters are the
  connected components of the links. It reads nothing but titles and times: a tracker that does not beat it
  gains nothing from the text.
- Facts, per truth incident, read from the predicted incident holding most of its entries (none when all of them
  are in no incident): dead/injured exact-match rate over all incidents (a null or missing prediction is a miss)
  and mean absolute error over the predictions that give a number (how many do is printed); arrests reported
  yes/no accuracy (truth arrested > 0 against predicted arrests > 0, null is no) next to always answering no;
  category exact; location: the city is right when the predicted location's name is one of the truth
  city_or_county's names (`scoring.city_names`: "Goleta (Isla Vista)" is either), the state when the predicted
  region or name is the truth state, both case- and punctuation-insensitive, `St.` read as Saint. The truth
  counts are final totals, so an incident whose reports all came early can be right to report fewer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from schemas import Incident, Update
from services.connection import connect
from services.errors import FeedError
from services.identity import canonical_link, entry_guid
from services.logs import configure_logging
from services.names import Keys
from services.poller.parse import parse_feed
from services.redis_server import redis_url
from services.replay import ReplayResult, delete_prefix, read_archive, replay
from services.settings import Settings
from services.wire import entry_data
from tests.evaluation import scoring
from tests.evaluation.scoring import PRF, Key

# The title baseline links reports published as close together as the tracker's own clustering window allows,
# through a word at most one title in a hundred has ("Tulsa", "Hesston"): without the window, or with common words,
# links chain most of a four-year archive into one cluster.
BASELINE_WINDOW = timedelta(days=3)
BASELINE_MAX_SHARE = 0.01


@dataclass(frozen=True)
class Truth:
    entries: dict[Key, str]  # entry → true incident id
    incidents: dict[str, dict[str, Any]]


def load_truth(root: Path) -> Truth:
    """truth.jsonl and incidents.json of an archive; an entry listed twice keeps its last incident."""
    entries: dict[Key, str] = {}
    for line in (root / "truth.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            entries[row["source_id"], row["guid"]] = str(row["incident"])
    incidents = json.loads((root / "incidents.json").read_text(encoding="utf-8"))
    return Truth(entries, {str(k): v for k, v in incidents.items()})


def archive_titles(root: Path, truth: Truth) -> dict[Key, tuple[str, datetime]]:
    """The title and reported time of every truth entry found in the snapshots, named the way the poller names
    it; the last snapshot's version wins."""
    archive = read_archive(root)
    titles: dict[Key, tuple[str, datetime]] = {}
    for snapshot in archive.snapshots:
        source = archive.sources[snapshot.source_id]
        try:
            parsed = parse_feed(snapshot.path.read_bytes(), feed=snapshot.source_id, base_url=source.url)
        except FeedError:
            continue  # the replay reports feed errors; an unparsable snapshot's entries count as absent here
        # The reported time as the pipeline takes it (RawUpdate.reported_at): the entry's own, never after the fetch.
        named = {
            (snapshot.source_id, entry_guid(entry)): (
                entry.title, min(entry.updated or entry.published or snapshot.at, snapshot.at)
            )
            for entry in parsed.entries
        }
        for item, key in scoring.match_items(named, truth.entries, canonical_link).items():
            titles[key] = named[item]
    return titles


@contextmanager
def _scratch_settings(url: str | None, **extra: Any) -> Iterator[Settings]:
    """Settings for one evaluation run. Pipeline log lines only from warnings up: the report is the output. Without
    a URL, LIVEDESK_REDIS_URL decides; an embedded server keeps its data in a scratch folder, not in the working
    directory."""
    with tempfile.TemporaryDirectory(prefix="livedesk-eval-") as scratch:
        overrides: dict[str, Any] = {"log_level": "warning", "data_dir": Path(scratch), **extra}
        if url:
            overrides["redis_url"] = url
        settings = Settings(**overrides)
        configure_logging(settings)
        yield settings


async def run_replay(root: Path, url: str | None, *, keep_updates: bool = False) -> tuple[ReplayResult, float,
                                                                                         list[str]]:
    """The archive through the real pipeline, how long that took in seconds, and with `keep_updates` the JSON of
    each update dedup passed on, in order (`--save-updates`: the private prefix is kept until they are read)."""
    with _scratch_settings(url) as settings, redis_url(settings) as server:
        prefix = f"{settings.key_prefix}:replay:{uuid.uuid4().hex[:12]}"
        started = time.monotonic()
        result = await replay(root, settings, server, key_prefix=prefix, keep=keep_updates)
        elapsed = time.monotonic() - started
        if not keep_updates:
            return result, elapsed, []
        redis = connect(server)
        try:
            rows = entry_data(await redis.xrange(Keys(prefix).updates))
        finally:
            await delete_prefix(redis, prefix)
            await redis.aclose()
        return result, elapsed, [data for _, data in rows]


async def run_saved(updates: list[Update], url: str | None) -> tuple[ReplayResult, float]:
    """`--from-updates`: the tracker alone on saved updates, and how long that took in seconds."""
    from services.tracker.stage import process  # the tracker's rules, without a broker
    from services.tracker.store import IncidentStore

    with (_scratch_settings(url, key_prefix=f"livedesk-eval:{uuid.uuid4().hex[:12]}") as settings,
          redis_url(settings) as server):
        redis = connect(server)
        try:
            store, events = IncidentStore(redis, settings.keys), []
            started = time.monotonic()
            for update in updates:
                events += await process(store, update)
            elapsed = time.monotonic() - started
            return ReplayResult(events, await store.all(), [], []), elapsed
        finally:
            await delete_prefix(redis, settings.key_prefix)
            await redis.aclose()


def assignments(incidents: list[Incident], truth: Truth) -> tuple[dict[Key, str], int]:
    """Truth entry → predicted incident id, and how many predicted items match no truth entry."""
    items = {(item.source_id, item.guid): incident.incident_id for incident in incidents for item in incident.items}
    matched = scoring.match_items(items, truth.entries, canonical_link)
    return {key: items[item] for item, key in matched.items()}, len(items) - len(matched)


def _prf(score: PRF) -> dict[str, float]:
    return {name: round(value, 4) for name, value in asdict(score).items()}


def clustering(
    truth: Truth, predicted: Mapping[Key, Hashable], titles: Mapping[Key, tuple[str, datetime]]
) -> dict[str, Any]:
    """B-cubed and pairwise scores of the tracker, the all-singletons floor and the title-overlap baseline."""
    entries = list(truth.entries)
    baseline = scoring.title_overlap_clusters(titles, window=BASELINE_WINDOW, max_share=BASELINE_MAX_SHARE)
    rows = {
        "tracker": predicted,
        "singletons": scoring.singletons(entries),
        "title_overlap": scoring.with_singletons(entries, baseline),  # entries absent from the snapshots: alone
    }
    return {
        name: {
            "bcubed": _prf(scoring.bcubed(row, truth.entries)),
            "pairwise": _prf(scoring.pairwise(row, truth.entries)),
        }
        for name, row in rows.items()
    }


def _rate(hits: int, total: int) -> float:
    return round(hits / total, 4) if total else 0.0


def facts(truth: Truth, assigned: Mapping[Key, str], incidents: list[Incident]) -> dict[str, Any]:
    """Per truth incident, its facts against those of the predicted incident holding most of its entries."""
    by_id = {incident.incident_id: incident for incident in incidents}
    members: dict[str, list[Key]] = {}
    for key, incident_id in truth.entries.items():
        members.setdefault(incident_id, []).append(key)
    compared: list[tuple[dict[str, Any], Incident | None]] = []
    for incident_id, keys in members.items():
        if incident_id not in truth.incidents:
            continue  # clustered, but incidents.json states no facts of it
        label = scoring.majority_label(keys, assigned)
        compared.append((truth.incidents[incident_id], by_id[label] if label else None))
    dead = scoring.score_counts((t["dead"], p.dead if p else None) for t, p in compared)
    injured = scoring.score_counts((t["injured"], p.injured if p else None) for t, p in compared)
    # An incident whose reports never state a number of dead (or injured) tells none: read as 0, as an editor would
    # ("two men were wounded" is no death). Reported next to the strict figure, never instead of it.
    unstated_as_zero = {
        name: scoring.score_counts((t[name], (getattr(p, name) or 0) if p else None) for t, p in compared).exact_rate
        for name in ("dead", "injured")
    }
    arrests = scoring.score_yes_no((t["arrested"], p.arrests if p else None) for t, p in compared)
    places = scoring.score_places((t["city_or_county"], t["state"], *_location(p)) for t, p in compared)
    categories = sum(p is not None and p.category.value == t.get("category") for t, p in compared)
    total = len(compared)
    return {
        "incidents": total,
        "without_facts": len(members) - total,
        "without_prediction": sum(p is None for _, p in compared),
        **{name: {**_counts(score), "exact_unstated_as_zero": round(unstated_as_zero[name], 4)}
           for name, score in (("dead", dead), ("injured", injured))},
        "arrests": {"accuracy": round(arrests.accuracy, 4), "always_no": round(arrests.always_no, 4),
                    "true_yes": arrests.true_yes, "predicted_yes": arrests.predicted_yes, "both_yes": arrests.both_yes},
        "category": _rate(categories, total),
        "location": {"city": _rate(places.city, total), "state": _rate(places.state, total),
                     "both": _rate(places.both, total), "located": places.located},
    }


def _location(incident: Incident | None) -> tuple[str | None, str | None]:
    if incident is None or incident.location is None:
        return None, None
    return incident.location.name, incident.location.region


def _counts(score: scoring.CountScore) -> dict[str, Any]:
    mae, median = score.mean_abs_error, score.median_abs_error
    return {"exact": round(score.exact_rate, 4), "reported": score.reported, "null": score.incidents - score.reported,
            "mae": round(mae, 3) if mae is not None else None, "median_ae": median,
            "exact_of_reported": round(score.exact_rate_reported, 4) if score.exact_rate_reported is not None else None}


def evaluate(root: Path, url: str | None, *, save: Path | None = None, saved: Path | None = None) -> dict[str, Any]:
    """Replay `root` (or feed the tracker the `saved` updates of an earlier replay) and score it: the figures the
    report prints, as JSON-ready data."""
    truth = load_truth(root)
    titles = archive_titles(root, truth)
    if saved is not None:
        lines = saved.read_text(encoding="utf-8").splitlines()
        result, elapsed_s = asyncio.run(run_saved([Update.model_validate_json(line) for line in lines if line], url))
    else:
        result, elapsed_s, updates = asyncio.run(run_replay(root, url, keep_updates=save is not None))
        if save is not None:
            save.write_text("".join(f"{data}\n" for data in updates), encoding="utf-8")
    assigned, stray = assignments(result.incidents, truth)
    predicted = scoring.with_singletons(truth.entries, assigned)
    return {
        "archive": str(root),
        "replay_s": round(elapsed_s, 1),
        "replay": {"events": len(result.events), "incidents": len(result.incidents),
                   "feed_errors": len(result.feed_errors), "dead_letters": len(result.dead_letters)},
        "entries": {
            "truth": len(truth.entries),
            "in_snapshots": len(titles),
            "absent": len(truth.entries) - len(titles),
            "in_an_incident": len(assigned),
            "in_no_incident": len(truth.entries) - len(assigned),
            "items_not_in_truth": stray,
        },
        "true_incidents": len(set(truth.entries.values())),
        "predicted_incidents_with_truth": len(set(assigned.values())),
        "baseline": {"window_days": BASELINE_WINDOW.days, "max_share": BASELINE_MAX_SHARE},
        "clustering": clustering(truth, predicted, titles),
        "facts": facts(truth, assigned, result.incidents),
    }


def render(report: Mapping[str, Any]) -> str:
    """The figures as a compact text report."""
    entries, replayed, fact = report["entries"], report["replay"], report["facts"]
    lines = [
        f"archive {report['archive']}: replay {report['replay_s']} s, {replayed['events']} events, "
        f"{replayed['incidents']} incidents, {replayed['feed_errors']} feed errors, "
        f"{replayed['dead_letters']} dead letters",
        f"entries: {entries['truth']} in truth, {entries['absent']} absent from the snapshots, "
        f"{entries['in_an_incident']} in an incident, {entries['in_no_incident']} in none (scored alone), "
        f"{entries['items_not_in_truth']} predicted items not in truth",
        f"incidents: {report['true_incidents']} true, {report['predicted_incidents_with_truth']} predicted "
        "holding truth entries",
        "",
        f"clustering{'':17}B³ P     R     F1    pair P    R     F1",
    ]
    names = {"tracker": "tracker", "singletons": "all singletons", "title_overlap": "title overlap baseline"}
    for key, name in names.items():
        row = report["clustering"][key]
        b, p = row["bcubed"], row["pairwise"]
        lines.append(f"  {name:<25}{b['precision']:.3f} {b['recall']:.3f} {b['f1']:.3f}   "
                     f"{p['precision']:.3f} {p['recall']:.3f} {p['f1']:.3f}")
    lines += ["", f"facts over {fact['incidents']} true incidents ({fact['without_prediction']} with no predicted "
              f"incident; not in incidents.json: {fact['without_facts']}; a null is a miss, MAE over reported numbers)"]
    for field in ("dead", "injured"):
        c = fact[field]
        mae = "n/a" if c["mae"] is None else f"{c['mae']:.3f} (median {c['median_ae']:g})"
        of_reported = "n/a" if c["exact_of_reported"] is None else f"{c['exact_of_reported']:.3f}"
        lines.append(f"  {field:<9} exact {c['exact']:.3f}  MAE {mae}  reported {c['reported']}, null {c['null']}"
                     f"  (exact of reported {of_reported}; unstated read as 0: {c['exact_unstated_as_zero']:.3f})")
    a, loc = fact["arrests"], fact["location"]
    lines += [
        f"  arrests   yes/no accuracy {a['accuracy']:.3f} (always no: {a['always_no']:.3f}); "
        f"truth yes {a['true_yes']}, predicted yes {a['predicted_yes']}, both {a['both_yes']}",
        f"  location  city {loc['city']:.3f}  state {loc['state']:.3f}  both {loc['both']:.3f}  "
        f"(a location given for {loc['located']})",
        f"  category  exact {fact['category']:.3f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("archive", type=Path, help="replay archive with truth.jsonl and incidents.json")
    parser.add_argument("--redis-url", help="server to replay on (default: LIVEDESK_REDIS_URL, else embedded)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    reuse = parser.add_mutually_exclusive_group()
    reuse.add_argument("--save-updates", type=Path, metavar="FILE", help="also write the replay's updates to FILE")
    reuse.add_argument("--from-updates", type=Path, metavar="FILE",
                       help="skip the replay: feed the tracker alone the updates a --save-updates run wrote")
    args = parser.parse_args(argv)
    report = evaluate(args.archive, args.redis_url, save=args.save_updates, saved=args.from_updates)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if report["replay"]["dead_letters"] else 0  # some entries never reached the tracker


if __name__ == "__main__":
    sys.exit(main())
