"""A stand-in for another fact extractor behind the tracker's interface (`services.tracker.extractors`)."""

from __future__ import annotations

from schemas import Category, Location
from services.tracker.facts import Facts, Stated


def a_model(title: str, text: str) -> Facts:
    """Stands in for a model-based extractor: it reads a fire in Leyton with two dead into any text."""
    return Facts(is_incident=True, category=Stated(Category.fire, title),
                 location=Stated(Location(name="Leyton", region="London"), title), dead=Stated(2, title))
