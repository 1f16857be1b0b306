"""A libFuzzer harness (atheris) for the tracker's fact extractor: any title and text give Facts whose snippets keep
their contract; an exception, an input past `-timeout` seconds or the process past `-rss_limit_mb` is a crash
libFuzzer reports, with the input saved.

    python -m tests.fuzz.fuzz_extract [libFuzzer options] [NEW_INPUTS_DIR [SEED_DIR ...]]

The input's first bytes make the title, the rest the text (both read as Unicode by atheris's FuzzedDataProvider).
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped]  # atheris ships no type information

with atheris.instrument_imports():
    from services.tracker import extract as extraction

DEFAULTS = ("-timeout=10", "-rss_limit_mb=2048", "-max_len=65536")


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    title = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 300))
    text = provider.ConsumeUnicodeNoSurrogates(len(data))
    facts = extraction.extract(title, text)
    for stated in (facts.category, facts.location, facts.dead, facts.injured, facts.cordon, facts.public_risk,
                   facts.arrests, facts.charges):
        if stated is not None and len(stated.snippet) > extraction.SNIPPET_CHARS:
            raise AssertionError(f"a snippet of {len(stated.snippet)} characters")


def with_defaults(argv: list[str]) -> list[str]:
    """`argv` with the per-input time, memory and size limits added where it does not set them."""
    given = {argument.partition("=")[0] for argument in argv[1:] if argument.startswith("-")}
    return [argv[0], *(option for option in DEFAULTS if option.partition("=")[0] not in given), *argv[1:]]


def main() -> None:
    atheris.Setup(with_defaults(sys.argv), test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
