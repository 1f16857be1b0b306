"""Which change events a subscriber wants: `EventFilter` decided against an event and its incident, and the `--where`
text form of a filter that the command line and the settings use.

The SDK, the notifier and the console decide with this one module, so a filter means the same everywhere.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable

from pydantic import ValidationError

from schemas import Authority, ChangeEvent, Incident
from schemas.subscriptions import Corroboration, EventFilter, Near

_EARTH_RADIUS_KM = 6371.0088
_RANK = {Corroboration.single: 0, Corroboration.several: 1, Corroboration.official: 2}


def corroboration(incident: Incident) -> Corroboration:
    """How well `incident` is sourced: official when an official source gave any of its evidence, else several when
    two or more sources reported it, else single."""
    if any(e.authority is Authority.official for evidence in incident.provenance.values() for e in evidence):
        return Corroboration.official
    return Corroboration.several if len(incident.sources) >= 2 else Corroboration.single


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) between two points in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def matches(where: EventFilter, event: ChangeEvent, incident: Incident | None) -> bool:
    """Whether `event` passes `where`. A filter on the incident (`where.needs_incident`) never passes an event whose
    incident is unknown; one on the place never passes an incident with no location (or none with coordinates, for
    `near`)."""
    if where.types and event.type not in where.types:
        return False
    if where.fields and event.field not in where.fields:
        return False
    if not where.needs_incident:
        return True
    if incident is None:
        return False
    if where.categories and incident.category not in where.categories:
        return False
    location = incident.location
    if where.regions:
        names = {name.casefold() for name in (location.name, location.region) if name} if location else set()
        if not names & {region.casefold() for region in where.regions}:
            return False
    if where.near is not None:
        if location is None or location.lat is None or location.lon is None:
            return False
        if distance_km(where.near.lat, where.near.lon, location.lat, location.lon) > where.near.km:
            return False
    return where.min_corroboration is None or _RANK[corroboration(incident)] >= _RANK[where.min_corroboration]


class FilterSyntaxError(ValueError):
    """A `--where` text that is not a filter; the message names the term and what is wrong with it."""


_LISTS = {"type": "types", "types": "types", "field": "fields", "fields": "fields", "category": "categories",
          "categories": "categories", "region": "regions", "regions": "regions"}


def parse_where(text: str | Iterable[str]) -> EventFilter:
    """A filter from terms such as `category=shooting,stabbing region=London near=51.58,-0.02,5
    corroboration=several type=condition_updated field=injured`; a term repeated adds to its list.

    `near` is latitude, longitude and radius in km. Raises FilterSyntaxError naming the bad term.
    """
    terms = shlex.split(text) if isinstance(text, str) else [t for chunk in text for t in shlex.split(chunk)]
    values: dict[str, object] = {}
    for term in terms:
        name, sep, value = term.partition("=")
        name = name.strip().lower().replace("-", "_")
        if not sep or not value.strip():
            raise FilterSyntaxError(f"{term!r}: expected name=value, e.g. category=shooting")
        if name in _LISTS:
            items = [item.strip() for item in value.split(",") if item.strip()]
            existing = values.setdefault(_LISTS[name], [])
            assert isinstance(existing, list)
            existing.extend(items)
        elif name == "near":
            parts = value.split(",")
            if len(parts) != 3:
                raise FilterSyntaxError(f"{term!r}: near takes latitude,longitude,km, e.g. near=51.58,-0.02,5")
            try:
                values["near"] = Near(lat=float(parts[0]), lon=float(parts[1]), km=float(parts[2].removesuffix("km")))
            except (ValueError, ValidationError) as error:
                raise FilterSyntaxError(f"{term!r}: {_first_error(error)}") from error
        elif name in {"corroboration", "min_corroboration"}:
            values["min_corroboration"] = value.strip()
        else:
            raise FilterSyntaxError(f"{term!r}: unknown filter {name!r}; use type, field, category, region, near or "
                                    "corroboration")
    try:
        return EventFilter.model_validate(values)
    except ValidationError as error:
        raise FilterSyntaxError(_first_error(error)) from error


def _first_error(error: ValueError) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" + (f" (got {first['input']!r})" if "input" in first else "")
    return str(error)


def describe(where: EventFilter) -> str:
    """The filter in the `--where` text form (what `hooks list` prints); empty for a filter that passes all."""
    terms = [f"type={','.join(t.value for t in where.types)}"] if where.types else []
    terms += [f"field={','.join(where.fields)}"] if where.fields else []
    terms += [f"category={','.join(c.value for c in where.categories)}"] if where.categories else []
    terms += [f"region={shlex.quote(','.join(where.regions))}"] if where.regions else []
    if where.near is not None:
        terms.append(f"near={where.near.lat:g},{where.near.lon:g},{where.near.km:g}")
    if where.min_corroboration is not None:
        terms.append(f"corroboration={where.min_corroboration.value}")
    return " ".join(terms)
