"""The feed registry: a TOML file of `[[source]]` tables, the same shape as a replay archive's `sources.toml`."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from schemas import FeedSource
from services.errors import ConfigurationError


def load_registry(path: Path) -> list[FeedSource]:
    """Every source in `path`, validated; a wrong registry stops start-up with the file and the entry named."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigurationError(f"feed registry {path}: no such file") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"feed registry {path}: not valid TOML: {error}") from error
    tables = document.get("source", [])
    if not isinstance(tables, list) or not tables:
        raise ConfigurationError(f"feed registry {path}: no [[source]] tables")
    sources: list[FeedSource] = []
    for position, table in enumerate(tables, start=1):
        if isinstance(table, dict) and "configured_url" in table:
            # The registry records it, from `url`: a TOML that set it would pose as the registry's own record.
            raise ConfigurationError(f"feed registry {path}: source #{position}: configured_url is not configurable,"
                                     " set url")
        try:
            sources.append(FeedSource.model_validate(table))
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise ConfigurationError(f"feed registry {path}: source #{position}: {problems}") from error
    ids = [source.id for source in sources]
    if duplicated := sorted({i for i in ids if ids.count(i) > 1}):
        raise ConfigurationError(f"feed registry {path}: duplicate source ids: {', '.join(duplicated)}")
    return sources
