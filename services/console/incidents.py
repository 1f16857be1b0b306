"""The incident routes: a filtered, paged list, and one incident with its provenance and history (now or as of a
time)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from schemas import Category, Incident
from schemas.console import EvidenceLink, IncidentDetail, IncidentPage
from services.console.http import (
    Handler,
    Problem,
    enum_list_param,
    int_param,
    list_param,
    model_response,
    only,
    time_param,
)
from services.names import Keys
from services.tracker.store import IncidentStore, believed_at
from services.wire import as_text

LIST_PARAMETERS = ("category", "region", "since", "q", "limit", "cursor")
# What an incident id can be (the tracker's are `i_` and hex): anything else, a `:` above all, would name another
# key under the prefix.
_INCIDENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_WEB_LINK = re.compile(r"^https?://", re.IGNORECASE)
_CHUNK = 100  # incidents read from the index at once while looking for a page of matches


def _encode_cursor(score: float, incident_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score!r}|{incident_id}".encode()).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        score, _, incident_id = raw.partition("|")
        if not incident_id:
            raise ValueError(raw)
        return float(score), incident_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(400, "cursor is not one this API gave out (pass next_cursor as it was)", "cursor") from None


class IncidentQuery:
    """The conditions of `GET /api/incidents`: each given one must hold."""

    def __init__(self, request: Request) -> None:
        only(request, LIST_PARAMETERS)
        self.categories = set(enum_list_param(request, "category", Category))
        self.regions = {region.casefold() for region in list_param(request, "region")}
        self.since = time_param(request, "since")
        self.text = (request.query_params.get("q") or "").strip().casefold()
        self.limit = int_param(request, "limit", 50, 1, 500)
        cursor = request.query_params.get("cursor")
        self.after = _decode_cursor(cursor) if cursor else None

    def passes(self, incident: Incident) -> bool:
        location = incident.location
        place = [part for part in (location.name, location.region, location.street) if part] if location else []
        if self.categories and incident.category not in self.categories:
            return False
        if self.regions and not self.regions & {part.casefold() for part in place[:2]}:
            return False
        return not self.text or any(self.text in part.casefold() for part in (incident.title, *place))


async def last_event_id(redis: Redis, keys: Keys) -> str | None:
    """The id of the newest entry on `changes`, or None when it is empty."""
    newest = await redis.xrevrange(keys.changes, count=1)
    return as_text(newest[0][0]) if newest else None


async def list_incidents(redis: Redis, keys: Keys, query: IncidentQuery) -> IncidentPage:
    """The page of incidents `query` asks for, most recently active first (the incident index's order: newest
    evidence, then id, both descending), with the cursor of the next page."""
    newest_event = await last_event_id(redis, keys)  # read first: an event after it is never missing from the page
    store = IncidentStore(redis, keys)
    top: float | str = query.after[0] if query.after else "+inf"
    bottom: float | str = query.since.timestamp() if query.since else "-inf"
    found: list[tuple[Incident, float, str]] = []
    offset = 0
    while len(found) <= query.limit:
        rows = await redis.zrevrangebyscore(keys.incident_index, top, bottom, start=offset, num=_CHUNK,
                                            withscores=True)
        if not rows:
            break
        offset += len(rows)
        ranked = [(as_text(row[0]), float(row[1])) for row in rows]
        if query.after:
            # Equal scores are listed by id, descending: the ids up to the cursor's were on earlier pages.
            ranked = [(i, s) for i, s in ranked if s < query.after[0] or i < query.after[1]]
        loaded = await store.load(incident_id for incident_id, _ in ranked)
        for incident_id, score in ranked:
            held = loaded.get(incident_id)
            if held is not None and query.passes(held[0]):
                found.append((held[0], score, incident_id))
    page = found[: query.limit]
    more = len(found) > query.limit
    return IncidentPage(
        incidents=[incident.model_copy(update={"provenance": {}, "terms": {}}) for incident, _, _ in page],
        next_cursor=_encode_cursor(page[-1][1], page[-1][2]) if more else None,
        last_event_id=newest_event,
    )


def evidence_links(incident: Incident) -> list[EvidenceLink]:
    """Each entry merged into `incident` with its link: the first one its provenance recorded, else its guid when
    that is a web address (many feeds use the link as the guid)."""
    urls: dict[tuple[str, str], str] = {}
    for seen in incident.provenance.values():
        for evidence in seen:
            if evidence.url and _WEB_LINK.match(evidence.url):
                urls.setdefault((evidence.source_id, evidence.guid), evidence.url)
    links = []
    for item in incident.items:
        url = urls.get((item.source_id, item.guid)) or (item.guid if _WEB_LINK.match(item.guid) else None)
        links.append(EvidenceLink(source_id=item.source_id, guid=item.guid, url=url))
    return links


async def incident_detail(redis: Redis, keys: Keys, incident_id: str, at: datetime | None) -> IncidentDetail:
    """The incident with its history up to the revision held at `at` (the latest without it); Problem 400 for an id
    no incident can have, 404 when the incident is unknown or was not known yet at `at`. An incident merged into
    another answers with the survivor's state and its own history."""
    if not _INCIDENT_ID.match(incident_id):
        raise Problem(400, f"{incident_id!r} is not an incident id such as i_d7eb9d5ede296bf0", "incident_id")
    store = IncidentStore(redis, keys)
    history = await store.history(incident_id)
    loaded = (await store.load([incident_id])).get(incident_id)
    if not history or loaded is None:
        raise Problem(404, f"no incident {incident_id}", "incident_id")
    own = [version for version in history if version.incident_id == incident_id]
    believed = believed_at(own, at) if at else own[-1]
    if believed is None:
        assert at is not None
        raise Problem(404, f"{incident_id} was not known yet at {at.isoformat()}", "at")
    return IncidentDetail(incident=loaded[0], at=at, believed=believed,
                          history=history[: history.index(believed) + 1], evidence=evidence_links(loaded[0]))


def incident_handlers(redis: Redis, keys: Keys) -> tuple[Handler, Handler]:
    """The two request handlers (list, one), bound to `redis` and `keys`."""

    async def list_route(request: Request) -> Response:
        return model_response(await list_incidents(redis, keys, IncidentQuery(request)))

    async def one_route(request: Request) -> Response:
        only(request, ("at",))
        detail = await incident_detail(redis, keys, request.path_params["incident_id"], time_param(request, "at"))
        return model_response(detail)

    return list_route, one_route
