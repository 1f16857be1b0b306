"""`livedesk worker STAGE` processes for tests: started against a given server, logging JSON lines to a file, and
stopped with SIGTERM as an operator would stop them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    stage: str
    consumer: str
    process: subprocess.Popen[bytes]
    log: Path

    def lines(self) -> list[dict[str, object]]:
        """The JSON log lines written so far."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def started(self) -> bool:
        """Whether the process has started its stage (its subscribers are reading)."""
        return any(line.get("event") == "livedesk started" for line in self.lines())

    def cpu_s(self) -> float:
        """CPU time (user + system) the process has used so far, from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL past `timeout_s`)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def start_worker(stage: str, url: str, prefix: str, consumer: str, log_dir: Path, **env: str) -> Worker:
    """`livedesk worker STAGE` on `url` under `prefix`; `env` adds LIVEDESK_* settings (reclaiming after a second)."""
    log = log_dir / f"{consumer}.log"
    settings = {
        "LIVEDESK_REDIS_URL": url,
        "LIVEDESK_KEY_PREFIX": prefix,
        "LIVEDESK_CONSUMER": consumer,
        "LIVEDESK_RECLAIM_IDLE_MS": "1000",
        "LIVEDESK_LOG_FORMAT": "json",
        "LIVEDESK_LOG_LEVEL": "debug",
        **env,
    }
    clean = {name: value for name, value in os.environ.items() if not name.startswith("LIVEDESK_")}
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "services", "worker", stage], cwd=ROOT,
                                   env={**clean, **settings}, stdout=sink, stderr=subprocess.STDOUT)
    return Worker(stage, consumer, process, log)
