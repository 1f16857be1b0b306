"""The dedup stage: one real-world text is one update, across outlets, edits, URL games and redelivery."""

from services.dedup.stage import Seen, Version, build_router, judge, process, story_key

__all__ = ["Seen", "Version", "build_router", "judge", "process", "story_key"]
