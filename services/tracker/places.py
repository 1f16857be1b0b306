"""A small gazetteer and place-name finder for fact extraction: pure functions, no I/O.

`find_places(sentence)` returns every place named in one sentence, each with the wider region it belongs to and a
rank (higher is more specific). It knows London's areas and boroughs, the major UK cities and the US states; other
places are caught by pattern ("in Smalltown", "in Springfield, Illinois"). Streets ("on Hoe Street") are found by
`find_street`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _words(block: str) -> list[str]:
    return block.split()


# Ranks: a neighbourhood beats a part of a city, which beats a city, which beats a nation or state.
AREA, PART, CITY, NATION = 3, 2, 1, 0

_LONDON_AREAS = """
Acton Balham Barking Barnet Battersea Bayswater Beckton Bermondsey Bethnal Green Bexleyheath Brixton Brockley
Bromley Camberwell Camden Town Canary Wharf Canning Town Catford Chingford Clapham Croydon Dagenham Dalston Deptford
East Ham Edmonton Eltham Enfield Finsbury Park Forest Gate Fulham Golders Green Hackney Hammersmith Hampstead
Harlesden Harrow Highbury Holloway Homerton Hornchurch Hounslow Ilford Islington Kennington Kensington Kentish Town
Kilburn Lewisham Leyton Leytonstone Manor Park Mile End Mitcham Morden Neasden Notting Hill Peckham Plaistow Poplar
Putney Romford Shepherd's Bush Shoreditch Soho Southall Stamford Hill Stepney Stockwell Stratford Streatham Sydenham
Thamesmead Tooting Tottenham Upton Park Walthamstow Wandsworth Wembley Whitechapel Willesden Wimbledon Wood Green
Woolwich
"""
# Boroughs that are not also the name of a neighbourhood above.
_LONDON_BOROUGHS = """
Barking and Dagenham Brent Bexley Ealing Greenwich Haringey Havering Hillingdon Lambeth Merton Newham Redbridge
Southwark Sutton Tower Hamlets Waltham Forest Westminster
"""
_CITIES = {
    "London": "England", "Birmingham": "West Midlands", "Manchester": "Greater Manchester",
    "Salford": "Greater Manchester",
    "Liverpool": "Merseyside", "Leeds": "West Yorkshire", "Bradford": "West Yorkshire", "Sheffield": "South Yorkshire",
    "Newcastle": "Tyne and Wear", "Sunderland": "Tyne and Wear", "Nottingham": "Nottinghamshire",
    "Leicester": "Leicestershire", "Coventry": "West Midlands", "Wolverhampton": "West Midlands", "Bristol": "England",
    "Southampton": "Hampshire", "Portsmouth": "Hampshire", "Brighton": "East Sussex", "Plymouth": "Devon",
    "Exeter": "Devon", "Oxford": "Oxfordshire", "Cambridge": "Cambridgeshire", "Norwich": "Norfolk",
    "York": "North Yorkshire",
    "Hull": "East Yorkshire", "Derby": "Derbyshire", "Stoke-on-Trent": "Staffordshire", "Luton": "Bedfordshire",
    "Milton Keynes": "Buckinghamshire", "Cardiff": "Wales", "Swansea": "Wales", "Newport": "Wales",
    "Glasgow": "Scotland", "Edinburgh": "Scotland", "Aberdeen": "Scotland", "Dundee": "Scotland",
    "Belfast": "Northern Ireland", "Derry": "Northern Ireland",
}
_NATIONS = ("England", "Scotland", "Wales", "Northern Ireland", "United Kingdom", "Britain")
_US_STATES = """
Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Georgia Hawaii Idaho Illinois Indiana
Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan Minnesota Mississippi Missouri Montana Nebraska
Nevada New Hampshire New Jersey New Mexico New York North Carolina North Dakota Ohio Oklahoma Oregon Pennsylvania
Rhode Island South Carolina South Dakota Tennessee Texas Utah Vermont Virginia Washington West Virginia Wisconsin
Wyoming
"""
_US_STATE_CODES = frozenset(
    _words(
        "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
        "OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC"
    )
)
# Names of two or more words in the lists above; everything else in them is one word.
_MULTI_WORD = re.compile(
    r"Barking and Dagenham|Tower Hamlets|Waltham Forest|Bethnal Green|Camden Town|Canary Wharf|Canning Town|East Ham|"
    r"Finsbury Park|Forest Gate|Golders Green|Kentish Town|Manor Park|Mile End|Notting Hill|Shepherd's Bush|"
    r"Stamford Hill|Upton Park|Wood Green|New Hampshire|New Jersey|New Mexico|New York|North Carolina|North Dakota|"
    r"Rhode Island|South Carolina|South Dakota|West Virginia"
)


def _names(block: str) -> list[str]:
    multi = _MULTI_WORD.findall(block)
    return multi + _MULTI_WORD.sub(" ", block).split()


@dataclass(frozen=True)
class Place:
    """A place as reports name it, the wider region it lies in, and how specific it is (`AREA` … `NATION`)."""

    name: str
    region: str | None
    rank: int


def _gazetteer() -> dict[str, Place]:
    places: dict[str, Place] = {}
    for name in _names(_US_STATES):
        places[name] = Place(name, "United States", NATION)
    for name in _NATIONS:
        places[name] = Place(name, None, NATION)
    for name, region in _CITIES.items():
        places[name] = Place(name, region, CITY)
    for name in _names(_LONDON_BOROUGHS):
        places[name] = Place(name, "London", PART)
    for name in _names(_LONDON_AREAS):
        places[name] = Place(name, "London", AREA)
    return places


GAZETTEER = _gazetteer()
_US_STATE_NAMES = frozenset(_names(_US_STATES))

# Longest names first so "East Ham" wins over a shorter name inside it; case-sensitive, as place names are capitalised
# and several are also ordinary words ("Barking", "Sutton").
_KNOWN = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in sorted(GAZETTEER, key=len, reverse=True)) + r")\b")
_PART_OF_LONDON = re.compile(
    r"\b(?:north|south|east|west|central|north[- ]east|north[- ]west|south[- ]east|south[- ]west)\s+London\b", re.I
)
_CAPITALISED = r"[A-Z][a-z'’]+(?:[- ][A-Z][a-z'’]+){0,2}"
# "in Springfield, Illinois" / "in Hove, East Sussex": a place and the region it is in.
_PLACE_AND_REGION = re.compile(
    rf"\b(?:in|at|near)\s+(?P<place>{_CAPITALISED}),\s+(?P<region>{_CAPITALISED}|[A-Z]{{2}})\b"
)
# "in Smalltown": a capitalised word after a preposition of place, when nothing better is known.
_PREPOSITION_PLACE = re.compile(rf"\b(?:in|at|near)\s+(?P<place>{_CAPITALISED})\b")
# Capitalised words after "in"/"at" that are not places: dates, institutions, people's titles.
_NOT_A_PLACE_WORD = frozenset(
    _words(
        """
        January February March April May June July August September October November December
        Monday Tuesday Wednesday Thursday Friday Saturday Sunday
        The A An This That These Those Our His Her Their Its It He She They We I
        Court Crown Hospital Station School College University Church Mosque Centre Police Service Office Brigade
        Ambulance Parliament Government Council Christmas Easter Street Road Avenue Lane Met Metropolitan
        Mr Mrs Ms Dr Detective Chief Superintendent Inspector Sergeant Commander Commissioner Constable Officer PC IOPC
        """
    )
)
_STREET = re.compile(
    r"\b(?:in|on|at|near|along|off)\s+(?:the\s+)?(?P<street>(?:[A-Z][a-z'’]+\s+){1,3}"
    r"(?:Street|Road|Avenue|Lane|Close|Drive|Way|Grove|Gardens|Crescent|Terrace|Square|Parade|Walk|Rise|Mews|Row|"
    r"Broadway))\b"
)


def _region_of(region: str) -> str | None:
    """The region a "Place, Region" pattern names, if it is one we know."""
    if region in _US_STATE_CODES or region in _US_STATE_NAMES or region in GAZETTEER:
        return region
    return None


def _is_place_like(name: str) -> bool:
    return not any(word in _NOT_A_PLACE_WORD for word in re.split(r"[- ]", name))


def find_places(sentence: str) -> list[tuple[int, Place]]:
    """Every place named in `sentence`, with its offset, in order of appearance."""
    found: dict[int, Place] = {}
    for m in _KNOWN.finditer(sentence):
        found[m.start()] = GAZETTEER[m.group()]
    for m in _PART_OF_LONDON.finditer(sentence):
        # "east London" is a part of London, more specific than the city; keep the reader's wording, lowercase first.
        name = m.group()[0].lower() + m.group()[1:]
        found[m.start()] = Place(name, "London", PART)
    known_spans = [range(start, start + len(p.name)) for start, p in found.items()]
    for m in _PLACE_AND_REGION.finditer(sentence):
        name, region = m.group("place"), _region_of(m.group("region"))
        start = m.start("place")
        if region and name not in GAZETTEER and _is_place_like(name):
            found[start] = Place(name, region, AREA)
            known_spans.append(range(start, m.end()))
    for m in _PREPOSITION_PLACE.finditer(sentence):
        name, start = m.group("place"), m.start("place")
        if any(start in span for span in known_spans) or not _is_place_like(name):
            continue
        # "in London Fields": the known name inside is already found; a longer guess around it adds nothing.
        if _KNOWN.match(name) is None:
            found[start] = Place(name, None, PART)
    return sorted(found.items(), key=lambda item: item[0])


def find_street(sentence: str) -> str | None:
    """The first street named in `sentence` ("on Hoe Street" → "Hoe Street"), if any."""
    for m in _STREET.finditer(sentence):
        street = m.group("street")
        if _is_place_like(street.rsplit(" ", 1)[0]):
            return street
    return None
