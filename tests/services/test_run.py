"""`livedesk run` end to end: a feed on loopback in, a signed webhook and the console out, and a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from redis import Redis as SyncRedis

from schemas import ChangeEvent, EventType
from schemas.console import ApiError, IncidentPage
from services.notifier.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.support.feed_server import FeedServer, free_port, rss
from tests.support.polling import FAST_POLLING_ENV
from tests.support.receivers import Receiver

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
SECRET = "run-test-secret-0123456789"
REPORT = ("met-1", "Man shot by police in Walthamstow",
          "A man was shot by police officers in Walthamstow, east London, on Friday. He is in a critical condition.")


def _wait_for(check: Callable[[], object], timeout_s: float, what: str, process: subprocess.Popen[bytes],
              log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"livedesk run exited early:\n{log.read_text()[-3000:]}"
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def _console_answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_run_polls_notifies_serves_the_console_and_stops_cleanly(redis_url: str, key_prefix: str,
                                                                 tmp_path: Path) -> None:
    """One `livedesk run` process: the report it polls opens an incident, the hook from LIVEDESK_HOOKS_FILE gets it
    signed, the console lists it and streams it, and SIGTERM stops the process even with an event stream open."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with FeedServer() as feeds, Receiver() as receiver:
        feeds.routes["/met.xml"] = rss(REPORT)
        sources = tmp_path / "sources.toml"
        sources.write_text(f'[[source]]\nid = "met"\nname = "Met"\nurl = "{feeds.url}/met.xml"\n'
                           'authority = "official"\n')
        hooks = tmp_path / "hooks.toml"
        hooks.write_text(f'[[hook]]\nid = "desk"\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
                         'where = "type=incident_opened"\n')
        env = {**os.environ, **FAST_POLLING_ENV, "LIVEDESK_REDIS_URL": redis_url, "LIVEDESK_KEY_PREFIX": key_prefix,
               "LIVEDESK_SOURCES": str(sources), "LIVEDESK_HOOKS_FILE": str(hooks), "LIVEDESK_HTTP_PORT": str(port),
               "LIVEDESK_ALLOW_PRIVATE_HOSTS": "true", "LIVEDESK_DATA_DIR": str(tmp_path / "data"),
               "LIVEDESK_LOG_FORMAT": "json"}
        log = tmp_path / "run.log"
        with log.open("wb") as sink:
            process = subprocess.Popen([sys.executable, "-m", "services", "run"], cwd=ROOT, env=env,
                                       stdout=sink, stderr=subprocess.STDOUT)
        try:
            _wait_for(lambda: receiver.accepted(), 30, "the hook's delivery", process, log)
            delivery = receiver.accepted()[0]
            event = ChangeEvent.model_validate_json(delivery.body)
            assert event.type is EventType.incident_opened
            assert delivery.key == event.event_id
            assert verify(SECRET, delivery.headers[TIMESTAMP_HEADER.lower()], delivery.body,
                          delivery.headers[SIGNATURE_HEADER.lower()])

            _wait_for(lambda: _console_answers(base), 10, "the console", process, log)
            page = IncidentPage.model_validate_json(httpx.get(f"{base}/api/incidents", timeout=5).content)
            assert [incident.incident_id for incident in page.incidents] == [event.incident_id]
            assert "livedesk_" in httpx.get(f"{base}/metrics", timeout=5).text
            unknown = httpx.get(f"{base}/no/such/page", timeout=5)
            assert unknown.status_code == 404
            assert ApiError.model_validate_json(unknown.content).error

            with httpx.stream("GET", f"{base}/events", params={"last_event_id": "0"}, timeout=10) as stream:
                data = next(line for line in stream.iter_lines() if line.startswith("data:"))
                assert json.loads(data.removeprefix("data:"))["event_id"] == event.event_id
                process.send_signal(signal.SIGTERM)  # with this event stream still open
                assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_demo_serves_the_console_while_the_story_plays(redis_url: str, key_prefix: str, tmp_path: Path) -> None:
    """`livedesk demo --console`: the console lists the story's incident while it plays and until Ctrl-C, which
    stops the process cleanly and removes the replay's keys."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LIVEDESK_REDIS_URL": redis_url, "LIVEDESK_KEY_PREFIX": key_prefix,
           "LIVEDESK_HTTP_PORT": str(port), "LIVEDESK_DATA_DIR": str(tmp_path / "data")}
    log = tmp_path / "demo.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "services", "demo", "--console", "--pace", "0.05"],
                                   cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: "the console stays up" in log.read_text(), 60, "the end of the story", process, log)
        page = IncidentPage.model_validate_json(httpx.get(f"{base}/api/incidents", timeout=5).content)
        assert any("Walthamstow" in (incident.title or "") for incident in page.incidents), page.incidents
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    client = SyncRedis.from_url(redis_url)
    try:
        assert not list(client.scan_iter(match=f"{key_prefix}:*")), "the replay's keys outlived the demo"
    finally:
        client.close()
