"""The livedesk command as a user runs it: real processes, real Redis, feeds served over HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from schemas import FeedSource
from services.cli import DEMO_ARCHIVE
from services.names import Keys
from services.poller.feeds import FeedRegistry
from services.poller.fetch import build_client
from services.poller.schedule import FeedSchedule
from services.poller.scheduling_state import mark_feed_hot, schedule_policy
from services.poller.stage import Poller
from services.settings import Settings
from services.stage import StageContext
from services.wire import entry_data
from tests.support.feed_server import FeedServer, free_port, rss
from tests.support.polling import FAST_POLLING_ENV
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.redis
def test_run_polls_feeds_and_tail_prints_the_changes(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    """`livedesk run` turns served feeds into change events that `livedesk tail --json` prints; Ctrl-C exits 0."""
    env = {"LIVEDESK_REDIS_URL": redis_url, "LIVEDESK_KEY_PREFIX": key_prefix, **FAST_POLLING_ENV,
           "LIVEDESK_ALLOW_PRIVATE_HOSTS": "true", "LIVEDESK_HTTP_PORT": str(free_port())}
    changes = SyncRedis.from_url(redis_url)

    def told_so_far() -> int:
        return int(changes.xlen(Keys(key_prefix).changes))

    with FeedServer() as server:
        server.routes["/echo.xml"] = rss(
            ("e1", "Man shot by police in Walthamstow", "A man was shot by police in Walthamstow, east London. "
             "He is in a critical condition in hospital."),
        )
        registry = tmp_path / "feeds.toml"
        registry.write_text(f'[[source]]\nid = "echo"\nname = "Echo"\nurl = "{server.url}/echo.xml"\n')
        # Output goes to files: a pipe nobody reads while the process runs fills up and stops it.
        tail = _start_logged(tmp_path / "tail", "tail", "--json", env=env)
        run = _start_logged(tmp_path / "run", "run", "--sources", str(registry), env=env)
        try:
            _wait_for(lambda: told_so_far() >= 1)  # the first version went through the pipeline
            opened = told_so_far()
            server.routes["/echo.xml"] = rss(
                ("e1", "Man shot by police in Walthamstow", "A man was shot by police in Walthamstow, east London. "
                 "His condition is now stable. A cordon remains in place."),
            )
            _wait_for(lambda: told_so_far() > opened)  # the edit changed the incident
            _wait_for(lambda: (tmp_path / "tail.out").read_text().count("\n") >= told_so_far())
        finally:
            changes.close()
            _stop_logged(run)
            _stop_logged(tail)
    run_err = (tmp_path / "run.err").read_text()
    assert run.returncode == 0, run_err[-3000:]
    assert tail.returncode == 0
    told = [json.loads(line) for line in (tmp_path / "tail.out").read_text().splitlines() if line.startswith("{")]
    assert [e["type"] for e in told][:1] == ["incident_opened"], run_err[-3000:]
    assert ("condition_updated", "critical", "stable") in [(e["type"], e["before"], e["after"]) for e in told]
    assert "feed polled" in run_err


def _start_logged(base: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with base.with_suffix(".out").open("wb") as out, base.with_suffix(".err").open("wb") as err:
        return subprocess.Popen([sys.executable, "-m", "services", *args], cwd=ROOT, env={**os.environ, **env},
                                stdout=out, stderr=err)


def _stop_logged(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("did not stop on Ctrl-C within 20 s")


def test_demo_without_redis_starts_its_own_server(tmp_path: Path) -> None:
    """With no LIVEDESK_REDIS_URL the demo runs on an embedded Valkey under the data folder and says so."""
    env = {"LIVEDESK_DATA_DIR": str(tmp_path / "data"), "LIVEDESK_LOG_FORMAT": "json"}
    env_without_url = {k: v for k, v in {**os.environ, **env}.items() if k != "LIVEDESK_REDIS_URL"}
    done = subprocess.run([sys.executable, "-m", "services", "demo", "--pace", "0"], cwd=ROOT, env=env_without_url,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no LIVEDESK_REDIS_URL: embedded valkey in use" in done.stderr
    assert "condition of man: critical → stable" in done.stdout
    assert (tmp_path / "data" / "appendonlydir").exists()


def test_feed_check_summarises_a_folder(tmp_path: Path) -> None:
    """`livedesk feed check` prints entries as JSON, a one-line error for a non-feed, and the summary line."""
    (tmp_path / "page.html").write_text("<html><body>not a feed</body></html>")
    done = subprocess.run([sys.executable, "-m", "services", "feed", "check", str(DEMO_ARCHIVE / "snapshots"),
                           str(tmp_path / "page.html")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    snapshots = len(list((DEMO_ARCHIVE / "snapshots").iterdir()))
    assert lines[-1] == f"checked {snapshots + 1}, ok {snapshots}, errors 1, crashed 0"
    assert any(line.startswith("ERROR ") and "page.html" in line for line in lines)
    assert json.loads(lines[0])["feed"].endswith(".xml")


@pytest.mark.parametrize(
    ("args", "environment", "message"),
    [
        (["run"], {}, "needs a feed registry"),
        (["run", "--sources", "/nonexistent/feeds.toml"], {}, "no such file"),
        (["worker", "indexer"], {}, "unknown stage(s): indexer"),
        (["worker", "push"], {}, "set LIVEDESK_PUBLIC_URL"),
        (["worker", "console"], {"LIVEDESK_HTTP_HOST": "0.0.0.0"}, "with no token: set LIVEDESK_CONSOLE_TOKEN"),
        (["worker", "notifier"], {"LIVEDESK_HOOKS_FILE": "/nonexistent/hooks.toml"}, "hooks file /nonexistent"),
        (["health"], {"LIVEDESK_KEY_PREFIX": "desk{"}, "LIVEDESK_KEY_PREFIX: Value error, key prefix 'desk{'"),
        (["worker", "dedup"], {"LIVEDESK_HTTP_PORT": "eighty"}, "LIVEDESK_HTTP_PORT: Input should be a valid integer"),
    ],
    ids=["no-registry", "missing-registry", "unknown-stage", "push-without-public-url", "open-console-off-loopback",
         "missing-hooks-file", "stray-brace-in-prefix", "setting-of-the-wrong-type"],
)
def test_misconfiguration_fails_at_start_up(args: list[str], environment: dict[str, str], message: str,
                                            redis_url: str) -> None:
    """A wrong command line or registry stops the process at once with exit code 2 and a one-line reason."""
    done = subprocess.run([sys.executable, "-m", "services", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False,
                          env={**os.environ, "LIVEDESK_REDIS_URL": redis_url, **environment})
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.redis
def test_feeds_commands_manage_the_live_registry(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    """feeds add refuses a non-feed and adds a feed that a running poller then polls; list, poll and remove work."""
    env = {"LIVEDESK_REDIS_URL": redis_url, "LIVEDESK_KEY_PREFIX": key_prefix, "LIVEDESK_POLL_INTERVAL_S": "60",
           "LIVEDESK_ALLOW_PRIVATE_HOSTS": "true", "LIVEDESK_HTTP_PORT": str(free_port())}

    def livedesk(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services", *args], cwd=ROOT, env={**os.environ, **env},
                              capture_output=True, text=True, timeout=60, check=False)

    with FeedServer() as server:
        server.routes["/a.xml"] = rss(("a1", "Man shot in Walthamstow", "He is in a critical condition."))
        server.routes["/b.xml"] = rss(("b1", "Fire in Leyton", "A fire broke out in Leyton."))
        server.routes["/page.html"] = b"<html><body>hello</body></html>"
        registry = tmp_path / "feeds.toml"
        registry.write_text(f'[[source]]\nid = "a"\nname = "A"\nurl = "{server.url}/a.xml"\n')

        refused = livedesk("feeds", "add", f"{server.url}/page.html")
        assert refused.returncode == 2
        assert "not a feed" in refused.stderr

        run = _start_logged(tmp_path / "run", "run", "--sources", str(registry), env=env)
        try:
            _wait_for(lambda: any(path == "/a.xml" for path, _ in server.requests))
            added = livedesk("feeds", "add", f"{server.url}/b.xml", "--id", "b", "--authority", "official")
            assert added.returncode == 0, added.stderr
            _wait_for(lambda: any(path == "/b.xml" for path, _ in server.requests))
            polls_of_a = sum(path == "/a.xml" for path, _ in server.requests)
            assert livedesk("feeds", "poll", "a").returncode == 0
            _wait_for(lambda: sum(path == "/a.xml" for path, _ in server.requests) > polls_of_a)
            listed = [json.loads(line) for line in livedesk("feeds", "list", "--json").stdout.splitlines()]
            assert [(f["id"], f["authority"], f["last_status"]) for f in listed] == [
                ("a", "news", "304"), ("b", "official", "200")  # a was polled again: not modified
            ]
            assert livedesk("feeds", "remove", "b").returncode == 0
            assert livedesk("feeds", "remove", "b").returncode == 2
        finally:
            _stop_logged(run)
    assert run.returncode == 0, (tmp_path / "run.err").read_text()[-2000:]


@pytest.mark.redis
def test_feeds_list_shows_entries_per_day_hot_gone_and_errors(settings: Settings) -> None:
    """feeds list, as a table and as JSON, shows each feed's entries per day as the scheduler estimated them, beside
    last fetch, status, next due, error count, hot and gone."""
    now = datetime.now(UTC)
    # Five entries an hour apart up to now: 4 gaps over 4 hours, 24 entries a day.
    items = "".join(
        f"<item><guid>e{n}</guid><title>Entry {n}</title><description>words</description>"
        f"<pubDate>{format_datetime(now - timedelta(hours=n), usegmt=True)}</pubDate></item>"
        for n in range(5)
    )
    env = {"LIVEDESK_REDIS_URL": settings.redis_url or "", "LIVEDESK_KEY_PREFIX": settings.key_prefix}

    async def poll_once(server: FeedServer) -> dict[str, FeedSchedule]:
        redis = Redis.from_url(env["LIVEDESK_REDIS_URL"])
        registry = FeedRegistry(redis, settings.keys)

        async def polled() -> bool:
            busy = await registry.scheduling("busy")
            broken, gone = await registry.status("broken"), await registry.status("gone")
            return busy.entries_per_day is not None and "error_count" in broken and gone.get("gone") == "1"

        try:
            sources = [FeedSource(id=n, name=n, url=f"{server.url}/{n}.xml") for n in ("busy", "broken", "gone")]
            async with build_client(settings) as client:
                poller = asyncio.create_task(Poller(StageContext(settings, redis), sources, client).run())
                try:
                    await eventually(polled, timeout_s=20, what="each feed polled once")
                finally:
                    poller.cancel()
                    async with asyncio.timeout(10):  # a poller that ignores cancellation fails, not hangs
                        await asyncio.gather(poller, return_exceptions=True)
            await mark_feed_hot(redis, settings.keys, "busy", datetime.now(UTC), schedule_policy(settings))
            return {s.id: await registry.scheduling(s.id) for s in sources}
        finally:
            await redis.aclose()

    with FeedServer() as server:
        server.routes["/busy.xml"] = (
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()
        )
        server.failures["/broken.xml"] = (500, {})
        server.failures["/gone.xml"] = (410, {})
        schedules = asyncio.run(poll_once(server))
    rate = schedules["busy"].entries_per_day
    assert rate is not None
    assert 23 < rate < 25
    from redis import Redis as SyncRedis

    with SyncRedis.from_url(settings.redis_url or "") as client:  # as the WebSub callback and the diff record them
        client.hset(settings.keys.feed_state("broken"), mapping={
            "push_until": (datetime.now(UTC) + timedelta(days=1)).isoformat(), "guid_unreliable": "duplicate: g1"})

    def livedesk(*args: str) -> list[str]:
        done = subprocess.run([sys.executable, "-m", "services", "feeds", "list", *args], cwd=ROOT,
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    rows = {row["id"]: row for row in map(json.loads, livedesk("--json"))}
    assert sorted(rows) == ["broken", "busy", "gone"]
    busy, broken, gone = rows["busy"], rows["broken"], rows["gone"]
    assert (busy["entries_per_day"], busy["hot"], busy["gone"], busy["error_count"]) == (rate, True, False, 0)
    assert busy["last_status"] == "200"
    assert busy["last_polled_at"] > now.isoformat()
    hot_due = datetime.now(UTC) + timedelta(seconds=settings.poll_hot_interval_s)
    assert busy["last_polled_at"] < busy["next_due"] < hot_due.isoformat(), "hot: due within the hot interval"
    assert (broken["entries_per_day"], broken["hot"], broken["gone"], broken["error_count"]) == (None, False, False, 1)
    assert (busy["pushed"], broken["pushed"], broken["guid_unreliable"]) == (False, True, "duplicate: g1")
    assert (gone["entries_per_day"], gone["hot"], gone["gone"], gone["error_count"]) == (None, False, True, 1)
    assert gone["next_due"] is None

    table = {line.split()[0]: line for line in livedesk()}
    assert f" {round(rate)}/day " in table["busy"]
    assert " HOT " in table["busy"]
    assert "GONE" not in table["busy"]
    assert f"last {busy['last_polled_at'][:19]}" in table["busy"]
    assert f"next {busy['next_due'][:19]}" in table["busy"]
    assert " -/day " in table["broken"]
    assert " PUSH GUIDS-UNRELIABLE " in table["broken"]
    assert "PUSH" not in table["busy"]
    assert "errors 1 " in table["broken"]
    assert " GONE " in table["gone"]
    assert "next -  " in table["gone"]


@pytest.mark.redis
def test_run_with_a_public_url_subscribes_and_takes_pushes(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    """`livedesk run` with LIVEDESK_PUBLIC_URL serves the WebSub callback: the hub a feed names verifies the
    subscription, and an entry it pushes comes out as a change event, with no second poll."""
    from redis import Redis as SyncRedis

    from tests.support.feed_server import atom, free_port
    from tests.support.websub_hub import WebSubHub

    port = free_port()
    env = {"LIVEDESK_REDIS_URL": redis_url, "LIVEDESK_KEY_PREFIX": key_prefix, "LIVEDESK_ALLOW_PRIVATE_HOSTS": "true",
           "LIVEDESK_PUBLIC_URL": f"http://127.0.0.1:{port}", "LIVEDESK_HTTP_PORT": str(port)}
    with FeedServer() as server, WebSubHub() as hub:
        topic = f"{server.url}/a.xml"
        server.routes["/a.xml"] = atom(hub.url, topic, ("e1", "Fire at a school in Leyton", "Crews are at the scene."))
        registry = tmp_path / "feeds.toml"
        registry.write_text(f'[[source]]\nid = "a"\nname = "A"\nurl = "{topic}"\n')
        run = _start_logged(tmp_path / "run", "run", "--sources", str(registry), env=env)
        try:
            _wait_for(lambda: ("subscribe", topic, True) in hub.verifications)
            pushed = atom(hub.url, topic, ("e2", "Man shot in Walthamstow", "He is in a critical condition."))
            assert hub.publish(topic, pushed) == [202]
            redis = SyncRedis.from_url(redis_url)
            try:
                _wait_for(lambda: "Walthamstow" in "".join(
                    data for _, data in entry_data(redis.xrange(f"{key_prefix}:stream:changes"))))
            finally:
                redis.close()
        finally:
            _stop_logged(run)
    assert [path for path, _ in server.requests] == ["/a.xml"]
    assert run.returncode == 0, (tmp_path / "run.err").read_text()[-2000:]


@pytest.mark.redis
def test_health_reports_backlogs_and_verdicts_or_fails(redis_url: str, key_prefix: str) -> None:
    """`livedesk health` exits 0 with each stage's backlog, each group's lag, the streams' lengths, back-pressure
    and the dedup counts; 1 when Redis does not answer."""
    from redis import Redis as SyncRedis

    from services.names import Keys

    keys = Keys(key_prefix)
    client = SyncRedis.from_url(redis_url)
    client.hset(keys.dedup_stats, mapping={"new": 3, "repeat": 2})
    client.xgroup_create(keys.raw, "dedup", id="0", mkstream=True)
    for n in range(3):
        client.xadd(keys.raw, {"__data__": str(n)})
    client.xreadgroup("dedup", "c", {keys.raw: ">"}, count=1)
    client.close()

    def health(url: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LIVEDESK_REDIS_URL": url, "LIVEDESK_KEY_PREFIX": key_prefix}
        return subprocess.run([sys.executable, "-m", "services", "health"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60, check=False)

    ok = health(redis_url)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["redis"] == "ok"
    assert set(report["backlog"]) == {"dedup", "tracker", "notifier"}
    assert report["backlog"]["dedup"] == 3
    [lag] = report["lag"]
    assert (lag["stream"], lag["group"], lag["unread"], lag["pending"]) == ("raw", "dedup", 2, 1)
    assert lag["oldest_unfinished_s"] >= 0
    assert report["streams"] == {"raw": 3, "updates": 0, "changes": 0, "deadletter": 0}
    assert report["back_pressure"] == {"max_backlog": 10_000, "holding": False, "behind": {}}
    assert report["retention"] == {"stream_retention_s": 7 * 86_400, "stream_max_len": 1_000_000}
    assert report["dedup_verdicts"] == {"new": 3, "repeat": 2}
    down = health("redis://127.0.0.1:9/0")
    assert down.returncode == 1
    assert json.loads(down.stdout)["redis"].startswith("unreachable")
