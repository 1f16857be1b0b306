"""The dedup stage: one real-world text is one update, across outlets, edits, URL games and redelivery.

judge.py (the verdict, pure) ← revisions.py (what an edit changed, over sentences.py) and shingles.py (MinHash
signatures, LSH bands);
stage.py (the Redis keys, the atomic publish, the router).
"""

from services.dedup.judge import NearMatch, Seen, Version, judge, story_key
from services.dedup.stage import DedupPolicy, build_router, process

__all__ = ["DedupPolicy", "NearMatch", "Seen", "Version", "build_router", "judge", "process", "story_key"]
