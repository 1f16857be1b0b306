"""The console's HTTP API through uvicorn on loopback, over incidents the real dedup and tracker stages made."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
from redis.asyncio import Redis
from starlette.routing import Route

from services.console.routes import build_console
from services.settings import Settings
from services.stage import StageContext
from services.wire import as_text
from tests.services.console.conftest import WALTHAMSTOW, api_error, is_valid, polled_feeds

pytestmark = pytest.mark.redis

HANDSWORTH, LUTON, SALFORD = "i_df63fb3911fa691b", "i_3532daf9f0805e6f", "i_2e3b52fc9b8cb660"
NEWEST_FIRST = [SALFORD, LUTON, HANDSWORTH, WALTHAMSTOW]  # by their newest evidence
MET_POLICE = ("tag:news.met-police.example.org,2025:release/"
              "man-taken-to-hospital-after-police-firearms-discharge-walthamstow")
MET_POLICE_URL = ("https://news.met-police.example.org/news/"
                  "man-taken-to-hospital-after-police-firearms-discharge-in-walthamstow-512877")


async def listed(client: httpx.AsyncClient, base: str, **query: str) -> list[str]:
    """The incident ids `GET /api/incidents` answers, every page followed, checking each page's shape."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        page = await client.get(f"{base}/api/incidents", params={**query, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        assert is_valid(body, "IncidentPage")
        ids += [incident["incident_id"] for incident in body["incidents"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the pages never end")


async def test_incident_list_filters(stories_url: str, client: httpx.AsyncClient) -> None:
    """Category, region (name or region), since, text and their combinations select the right incidents, most
    recently active first."""
    assert await listed(client, stories_url) == NEWEST_FIRST
    assert await listed(client, stories_url, category="shooting") == [HANDSWORTH, WALTHAMSTOW]
    assert await listed(client, stories_url, category="shooting,stabbing") == [LUTON, HANDSWORTH, WALTHAMSTOW]
    assert await listed(client, stories_url, region="london") == [WALTHAMSTOW]  # region, any case
    assert await listed(client, stories_url, region="Handsworth") == [HANDSWORTH]  # the place's own name
    assert await listed(client, stories_url, since="2025-11-01T00:00Z") == [SALFORD, LUTON]
    assert await listed(client, stories_url, q="WALTHAMSTOW") == [WALTHAMSTOW]
    assert await listed(client, stories_url, category="shooting", region="Birmingham") == [HANDSWORTH]
    assert await listed(client, stories_url, category="fire", region="London") == []


async def test_incident_list_pages(stories_url: str, client: httpx.AsyncClient, stories: Settings,
                                   redis: Redis) -> None:
    """Pages of one, or of three, follow each other with no incident twice or missed, filters holding across pages;
    the list leaves provenance out and names the newest change event to resume the event stream from."""
    assert await listed(client, stories_url, limit="1") == NEWEST_FIRST
    assert await listed(client, stories_url, limit="3") == NEWEST_FIRST
    assert await listed(client, stories_url, limit="1", category="shooting") == [HANDSWORTH, WALTHAMSTOW]
    first = (await client.get(f"{stories_url}/api/incidents", params={"limit": "3"})).json()
    assert len(first["incidents"]) == 3
    assert all(incident["provenance"] == {} and incident["terms"] == {} for incident in first["incidents"])
    newest = await redis.xrevrange(stories.keys.changes, count=1)
    assert newest is not None
    assert first["last_event_id"] == as_text(newest[0][0])


async def test_one_incident_with_provenance_history_and_evidence(stories_url: str,
                                                                  client: httpx.AsyncClient) -> None:
    """One incident: its current state, every piece of evidence per field (the late straggler's "critical"
    included), every revision in order with why it joined, and the link of every entry merged into it."""
    answer = await client.get(f"{stories_url}/api/incidents/{WALTHAMSTOW}")
    assert answer.status_code == 200
    detail = answer.json()
    assert is_valid(detail, "IncidentDetail")
    incident = detail["incident"]
    assert (incident["category"], incident["cordon"], incident["public_risk"]) == ("shooting", "lifted", "none")
    said = [(p["source_id"], p["value"]) for p in incident["provenance"]["casualties.man.condition"]]
    assert ("met-police", "critical") in said
    assert ("met-police", "stable") in said
    assert ("city-wire", "critical") in said, "the straggler is kept as provenance"
    history = detail["history"]
    assert [version["rev"] for version in history] == list(range(1, len(history) + 1))
    assert history[0]["decision"]["how"] == "opened"
    assert history[-1]["version"] == incident["version"] == 14
    assert detail["believed"] == history[-1]
    assert detail["at"] is None
    assert sum(len(version["events"]) for version in history) == 14
    links = {(link["source_id"], link["guid"]): link["url"] for link in detail["evidence"]}
    assert set(links) == {(item["source_id"], item["guid"]) for item in incident["items"]}
    assert links[("met-police", MET_POLICE)] == MET_POLICE_URL
    assert all(url and url.startswith("https://") for url in links.values())


async def test_one_incident_as_of_a_time(stories_url: str, client: httpx.AsyncClient) -> None:
    """`at` answers the revision believed then and the history up to it (an offset is honoured, even with its `+`
    not URL-encoded); before the incident was known it is a 404 naming `at`."""
    detail = (await client.get(f"{stories_url}/api/incidents/{WALTHAMSTOW}",
                               params={"at": "2025-10-24T16:00:00Z"})).json()
    assert is_valid(detail, "IncidentDetail")
    believed = detail["believed"]
    assert (believed["rev"], believed["version"]) == (3, 6)  # the opening report, the Met's release, City Wire's
    assert believed["state"]["cordon"] == "in_place"
    assert [c["condition"] for c in believed["state"]["casualties"]] == ["critical"]
    assert [version["rev"] for version in detail["history"]] == [1, 2, 3]
    assert detail["at"] == "2025-10-24T16:00:00Z"
    assert detail["incident"]["cordon"] == "lifted", "the incident itself is as it is now"
    offset = await client.get(f"{stories_url}/api/incidents/{WALTHAMSTOW}?at=2025-10-24T17:00:00+01:00")
    assert offset.json()["believed"] == believed
    api_error(await client.get(f"{stories_url}/api/incidents/{WALTHAMSTOW}", params={"at": "2025-10-24T12:00Z"}),
              404, "at")


BAD_REQUESTS = [
    ("/api/incidents?limit=0", "limit"),
    ("/api/incidents?limit=many", "limit"),
    ("/api/incidents?limit=501", "limit"),
    ("/api/incidents?category=shooting,arson", "category"),
    ("/api/incidents?since=yesterday", "since"),
    ("/api/incidents?cursor=not-a-cursor", "cursor"),
    ("/api/incidents?colour=red", "colour"),
    (f"/api/incidents/{WALTHAMSTOW}?at=soon", "at"),
    (f"/api/incidents/{WALTHAMSTOW}?version=3", "version"),
    ("/api/incidents/i_1:history", "incident_id"),
    ("/api/feeds?all=1", "all"),
    ("/api/deliveries?limit=-1", "limit"),
    ("/api/deadletters?limit=x", "limit"),
    ("/api/deadletters/latest", "dead_letter_id"),
    ("/events?type=condition_changed", "type"),
    ("/events?near=51.5,-0.1", "near"),
    ("/events?corroboration=lots", "corroboration"),
    ("/events?last_event_id=yesterday", "last_event_id"),
    ("/events?since=2025-10-24", "since"),
]


@pytest.mark.parametrize(("path", "parameter"), BAD_REQUESTS)
async def test_a_bad_parameter_is_a_400_naming_it(stories_url: str, client: httpx.AsyncClient, path: str,
                                                  parameter: str) -> None:
    """Each malformed or unknown query or path parameter is a 400 ApiError that names it."""
    api_error(await client.get(f"{stories_url}{path}"), 400, parameter)


@pytest.mark.parametrize(("method", "path", "status", "parameter"), [
    ("GET", "/api/incidents/i_0000000000000000", 404, "incident_id"),
    ("GET", "/api/deadletters/1-0", 404, "dead_letter_id"),
    ("GET", "/api/alerts", 404, None),
    ("GET", "/no-such-page", 404, None),
    ("GET", "/static/missing.js", 404, None),
    ("POST", "/api/incidents", 405, None),
    ("DELETE", "/api/incidents/" + WALTHAMSTOW, 405, None),
])
async def test_what_is_not_there_is_an_api_error(stories_url: str, client: httpx.AsyncClient, method: str,
                                                 path: str, status: int, parameter: str | None) -> None:
    """Unknown incidents, dead letters, routes and methods answer an ApiError too, never Starlette's plain text."""
    api_error(await client.request(method, f"{stories_url}{path}"), status, parameter)


async def test_feeds_show_what_the_pollers_recorded(settings: Settings, redis: Redis, console_url: str,
                                                    client: httpx.AsyncClient) -> None:
    """Each registered feed with its last status, error, error count and due time, as the real poller left them."""
    async with polled_feeds(settings, redis):
        answer = await client.get(f"{console_url}/api/feeds")
    assert answer.status_code == 200
    assert is_valid(answer.json(), "FeedList")
    feeds = {feed["id"]: feed for feed in answer.json()["feeds"]}
    assert sorted(feeds) == ["broken", "gone", "good"]
    good, broken, gone = feeds["good"], feeds["broken"], feeds["gone"]
    assert (good["name"], good["authority"], good["last_status"]) == ("Good Times", "news", "304")
    assert (good["last_error"], good["error_count"], good["gone"]) == (None, 0, False)
    assert good["next_due"] is not None
    assert good["last_polled_at"] is not None
    assert "broken" in broken["last_error"]
    assert broken["error_count"] >= 1
    assert (gone["gone"], gone["last_status"], gone["next_due"]) == (True, "410", None)


async def test_openapi_lists_every_route_and_describes_the_bodies(stories_url: str,
                                                                  client: httpx.AsyncClient) -> None:
    """/openapi.json is OpenAPI 3.1 naming every route the console serves with its parameters, every reference
    resolves, and what the API really answers validates against the schemas the document gives."""
    document = (await client.get(f"{stories_url}/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"]
    served = {route.path for route in build_console(_context()).routes
              if isinstance(route, Route) and route.path != "/api/{rest:path}"}
    assert set(document["paths"]) == served
    operation_ids = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert len(operation_ids) == len(set(operation_ids))
    for path, item in document["paths"].items():
        operation = item["get"]
        assert "200" in operation["responses"]
        assert operation["summary"]
        declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        assert declared == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path
    _check_refs(document, document)

    def answers(model: str, body: Any) -> None:
        schema = {"$ref": f"#/components/schemas/{model}", "components": document["components"]}
        jsonschema.Draft202012Validator(schema).validate(body)

    responses = document["paths"]["/api/incidents"]["get"]["responses"]
    assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/IncidentPage")
    answers("IncidentPage", (await client.get(f"{stories_url}/api/incidents")).json())
    answers("IncidentDetail", (await client.get(f"{stories_url}/api/incidents/{WALTHAMSTOW}")).json())
    answers("FeedList", (await client.get(f"{stories_url}/api/feeds")).json())
    answers("DeliveryList", (await client.get(f"{stories_url}/api/deliveries")).json())
    answers("DeadLetterList", (await client.get(f"{stories_url}/api/deadletters")).json())
    answers("ApiError", (await client.get(f"{stories_url}/api/incidents?limit=0")).json())
    with pytest.raises(jsonschema.ValidationError):
        answers("IncidentPage", {"incidents": [{"incident_id": "i_1"}]})  # the schemas do reject a wrong body


def _context() -> StageContext:
    """A context for listing the routes (nothing is read)."""
    from services.connection import connect

    return StageContext(Settings(_env_file=None, redis_url="redis://127.0.0.1:1/0"),
                        connect("redis://127.0.0.1:1/0"))


def _check_refs(node: Any, document: dict[str, Any]) -> None:
    """Every `$ref` in `node` points at something in `document`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            target: Any = document
            for part in ref.removeprefix("#/").split("/"):
                assert isinstance(target, dict), f"{ref} does not resolve"
                assert part in target, f"{ref} does not resolve"
                target = target[part]
        for value in node.values():
            _check_refs(value, document)
    elif isinstance(node, list):
        for value in node:
            _check_refs(value, document)


async def test_page_and_its_files_are_served_from_the_console(console_url: str, client: httpx.AsyncClient) -> None:
    """`/` is the page with a content security policy that allows only the console itself; its script and style
    are served from /static and name no other origin (no CDN, no build step)."""
    page = await client.get(f"{console_url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert '<script src="/static/app.js"' in page.text
    script = await client.get(f"{console_url}/static/app.js")
    style = await client.get(f"{console_url}/static/style.css")
    assert script.status_code == style.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "css" in style.headers["content-type"]
    for text in (page.text, script.text, style.text):
        assert "://" not in text, "everything the page loads comes from the console"
    assert "new EventSource" in script.text
    assert "/api/incidents" in script.text
