"""The extractor the tracker runs is chosen by name: the shipped rules, or any callable with the same interface."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from services.settings import Settings
from services.stage import StageContext
from services.tracker.extract import extract
from services.tracker.extractors import ExtractorSpecError, load_extractor
from services.tracker.stage import build_router
from tests.support.extractors import a_model


def test_rules_are_the_shipped_extractor() -> None:
    assert load_extractor("rules") is extract


def test_another_extractor_is_named_by_module_and_callable() -> None:
    assert load_extractor("tests.support.extractors:a_model") is a_model


@pytest.mark.parametrize(("spec", "says"), [
    ("rulez", "expected 'rules' or 'package.module:callable'"),
    ("no_such_package.models:extract", "cannot import no_such_package.models"),
    ("services.tracker.extract:no_such_function", "has no callable 'no_such_function'"),
    ("services.tracker.extract:SNIPPET_CHARS", "has no callable 'SNIPPET_CHARS'"),
], ids=["not-a-spec", "no-such-module", "no-such-callable", "not-callable"])
def test_a_bad_spec_is_refused_with_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(ExtractorSpecError, match=r"tracker extractor") as raised:
        load_extractor(spec)
    assert spec in str(raised.value)
    assert says in str(raised.value)


@pytest.mark.redis
async def test_the_tracker_stage_will_not_start_with_an_extractor_it_cannot_call(settings: Settings,
                                                                                 redis: Redis) -> None:
    broken = settings.model_copy(update={"tracker_extractor": "services.tracker.extract:no_such_function"})
    with pytest.raises(ExtractorSpecError, match="no_such_function"):
        build_router(StageContext(broken, redis))
