"""Which fact extractor the tracker runs: the shipped rules, or another behind the same interface.

An extractor is any callable `(title, text) -> Facts` that keeps the contract of `services.tracker.extract.extract`
(every value with the sentence that stated it; nothing for what the text does not say; `is_incident=False` for a text
about no incident). `LIVEDESK_TRACKER_EXTRACTOR` names it: `rules` (the default: pattern tables, offline, no model)
or `package.module:callable`, for instance a model-based extractor, or one that runs the rules first and asks a model
about what they left empty.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from services.tracker.extract import extract
from services.tracker.facts import Facts

RULES = "rules"


class Extractor(Protocol):
    def __call__(self, title: str, text: str) -> Facts: ...


class ExtractorSpecError(ValueError):
    """`LIVEDESK_TRACKER_EXTRACTOR` names nothing the tracker can call."""


def load_extractor(spec: str) -> Extractor:
    """The extractor `spec` names: `rules`, or `package.module:callable`."""
    if spec == RULES:
        return extract
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ExtractorSpecError(f"tracker extractor {spec!r}: expected 'rules' or 'package.module:callable'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ExtractorSpecError(f"tracker extractor {spec!r}: cannot import {module_name}: {error}") from error
    found = getattr(module, attribute, None)
    if not callable(found):
        raise ExtractorSpecError(f"tracker extractor {spec!r}: {module_name} has no callable {attribute!r}")
    return found  # type: ignore[no-any-return]
