"""The TOML feed registry: what start-up accepts and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.errors import ConfigurationError
from services.poller.registry import load_registry


def test_sources_are_read_as_configured(tmp_path: Path) -> None:
    """Each [[source]] becomes a FeedSource whose URL is the configured one; the registry fills configured_url."""
    path = tmp_path / "feeds.toml"
    path.write_text('[[source]]\nid = "met"\nname = "Met"\nurl = "https://news.example/met.xml"\n'
                    'authority = "official"\n')
    (source,) = load_registry(path)
    assert (source.id, source.url, source.authority.value, source.configured_url) == (
        "met", "https://news.example/met.xml", "official", None
    )


def test_configured_url_cannot_be_configured(tmp_path: Path) -> None:
    """configured_url is the registry's record of `url`: a TOML that sets it fails at start-up, naming the source."""
    path = tmp_path / "feeds.toml"
    path.write_text('[[source]]\nid = "met"\nname = "Met"\nurl = "https://a.example/x"\nconfigured_url = "https://b"\n')
    with pytest.raises(ConfigurationError, match=r"source #1: configured_url is not configurable"):
        load_registry(path)
