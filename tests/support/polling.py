"""Settings that make pollers poll again within a fraction of a second, for tests that watch several rounds."""

from __future__ import annotations

FAST_POLLING = {
    "poll_min_interval_s": 0.1,
    "poll_max_interval_s": 0.3,
    "poll_hot_interval_s": 0.2,
    "poll_backoff_base_s": 0.1,
    "poll_interval_s": 0.2,
}
FAST_POLLING_ENV = {f"LIVEDESK_{name.upper()}": str(value) for name, value in FAST_POLLING.items()}
