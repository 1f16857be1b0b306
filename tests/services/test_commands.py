"""The livedesk command as a user runs it: real processes, real Redis, feeds served over HTTP on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.cli import DEMO_ARCHIVE
from tests.support.feed_server import FeedServer, rss
from tests.support.polling import FAST_POLLING_ENV

ROOT = Path(__file__).resolve().parents[2]


def _start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "services", *args], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"did not stop on Ctrl-C within 20 s: {err[-2000:]}")
    return out, err


@pytest.mark.redis
def test_run_polls_feeds_and_tail_prints_the_changes(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    """`livedesk run` turns served feeds into change events that `livedesk tail --json` prints; Ctrl-C exits 0."""
    env = {"LIVEDESK_REDIS_URL": redis_url, "LIVEDESK_KEY_PREFIX": key_prefix, **FAST_POLLING_ENV,
           "LIVEDESK_ALLOW_PRIVATE_HOSTS": "true"}
    with FeedServer() as server:
        server.routes["/echo.xml"] = rss(
            ("e1", "Man shot by police in Walthamstow", "A man was shot by police in Walthamstow, east London. "
             "He is in a critical condition in hospital."),
        )
        registry = tmp_path / "feeds.toml"
        registry.write_text(f'[[source]]\nid = "echo"\nname = "Echo"\nurl = "{server.url}/echo.xml"\n')
        tail = _start("tail", "--json", env=env)
        run = _start("run", "--sources", str(registry), env=env)
        try:
            _wait_for(lambda: any(path == "/echo.xml" for path, _ in server.requests))
            time.sleep(1.5)  # the first version goes through the pipeline before the edit is served
            server.routes["/echo.xml"] = rss(
                ("e1", "Man shot by police in Walthamstow", "A man was shot by police in Walthamstow, east London. "
                 "His condition is now stable. A cordon remains in place."),
            )
            polls = len(server.requests)
            _wait_for(lambda: len(server.requests) > polls + 1)  # the edit has been fetched
            time.sleep(2)
        finally:
            _, run_err = _stop(run)
            tail_out, _ = _stop(tail)
    assert run.returncode == 0, run_err[-3000:]
    assert tail.returncode == 0
    told = [json.loads(line) for line in tail_out.splitlines() if line.startswith("{")]
    assert [e["type"] for e in told][:1] == ["incident_opened"], run_err[-3000:]
    assert ("condition_updated", "critical", "stable") in [(e["type"], e["before"], e["after"]) for e in told]
    assert "feed polled" in run_err


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
    ("args", "message"),
    [
        (["run"], "needs a feed registry"),
        (["run", "--sources", "/nonexistent/feeds.toml"], "no such file"),
        (["worker", "indexer"], "unknown stage(s): indexer"),
    ],
    ids=["no-registry", "missing-registry", "unknown-stage"],
)
def test_misconfiguration_fails_at_start_up(args: list[str], message: str, redis_url: str) -> None:
    """A wrong command line or registry stops the process at once with exit code 2 and a one-line reason."""
    done = subprocess.run([sys.executable, "-m", "services", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, "LIVEDESK_REDIS_URL": redis_url})
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.redis
def test_feeds_commands_manage_the_live_registry(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    """feeds add refuses a non-feed and adds a feed that a running poller then polls; list, poll and remove work."""
    env = {"LIVEDESK_REDIS_URL": redis_url, "LIVEDESK_KEY_PREFIX": key_prefix, "LIVEDESK_POLL_INTERVAL_S": "60",
           "LIVEDESK_ALLOW_PRIVATE_HOSTS": "true"}

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

        run = _start("run", "--sources", str(registry), env=env)
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
            _, run_err = _stop(run)
    assert run.returncode == 0, run_err[-2000:]
