"""A libFuzzer harness (atheris) for the parse boundary: any bytes give a ParsedFeed within the bounds of the
normalised form, or a one-line FeedError; anything else is a crash libFuzzer reports, with the input saved.

    python -m tests.fuzz.fuzz_parse [libFuzzer options] [NEW_INPUTS_DIR [SEED_DIR ...]]

for instance, from the repository, with the feedparser corpus as seeds and new inputs kept in /tmp/parse-inputs:

    python -m tests.fuzz.fuzz_parse -max_total_time=600 /tmp/parse-inputs ../shared/corpora/feedparser-tests/tests

Each input gets at most `-timeout` seconds (10 unless given) and the process at most `-rss_limit_mb` of memory
(2048 unless given): past either, libFuzzer stops and saves the input, so a hang or a blow-up is a finding too.
Unless `-dict` is given, the mutation dictionary is tests.fuzz.mutations.TOKENS (DTDs, entities, CDATA, encodings).

parse_feed runs here in the fuzzer's process, without the ParserPool's limits, so that slow paths show: feedparser's
known quadratic ones (tests/services/poller/test_hostile_parser_pool.py) are timeouts on inputs long enough to take
them, as the poller's parser processes bound them.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import atheris  # type: ignore[import-untyped]  # atheris ships no type information

with atheris.instrument_imports():
    import feedparser  # noqa: F401  # instrumented for coverage: most of the parse boundary's branches are in it

    from services.poller import parse

from services.errors import FeedError
from tests.fuzz.mutations import TOKENS

DEFAULTS = ("-timeout=10", "-rss_limit_mb=2048", "-max_len=262144")


def test_one_input(data: bytes) -> None:
    try:
        parsed = parse.parse_feed(data, feed="fuzz")
    except FeedError as error:
        if not error.reason or "\n" in error.reason:
            raise AssertionError(f"a refusal without a one-line reason: {error.reason!r}") from None
        return
    if len(parsed.entries) > parse.MAX_ENTRIES:
        raise AssertionError(f"{len(parsed.entries)} entries")
    for entry in parsed.entries:
        if len(entry.title) > parse.MAX_TITLE_CHARS or len(entry.text) > parse.MAX_TEXT_CHARS:
            raise AssertionError(f"title of {len(entry.title)} or text of {len(entry.text)} characters")
        entry.model_dump_json()


def with_defaults(argv: list[str], dictionary_path: str) -> list[str]:
    """`argv` with the per-input time, memory and size limits, and the dictionary, where it does not set them."""
    given = {argument.partition("=")[0] for argument in argv[1:] if argument.startswith("-")}
    defaults = [option for option in (*DEFAULTS, f"-dict={dictionary_path}") if option.partition("=")[0] not in given]
    return [argv[0], *defaults, *argv[1:]]


def dictionary() -> str:
    """TOKENS as a libFuzzer dictionary file; its path. Named by its content, since libFuzzer ends the process
    without cleaning up."""
    text = "".join('"' + "".join(f"\\x{byte:02x}" for byte in token) + '"\n' for token in TOKENS)
    path = Path(tempfile.gettempdir()) / f"livedesk-feeds-{hashlib.sha256(text.encode()).hexdigest()[:12]}.dict"
    if not path.exists():
        path.write_text(text)
    return str(path)


def main() -> None:
    atheris.Setup(with_defaults(sys.argv, dictionary()), test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
