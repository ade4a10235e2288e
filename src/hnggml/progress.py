"""Progress lines for long jobs, written to stderr."""

from __future__ import annotations

import sys
import time


class Progress:
    """Print "desc: done/total (rate, ETA)" at most once per interval seconds."""

    def __init__(self, total: int, desc: str, interval: float = 2.0, stream=None, enabled: bool = True):
        self.total = max(int(total), 0)
        self.desc = desc
        self.interval = interval
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = 0
        self._start = time.monotonic()
        self._last = 0.0

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last >= self.interval or self.done >= self.total):
            self._last = now
            elapsed = now - self._start
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta_text = f"{eta:.0f}s" if eta != float("inf") else "?"
            extra = f" {note}" if note else ""
            print(f"{self.desc}: {self.done}/{self.total} ({rate:.2f}/s, ETA {eta_text}){extra}",
                  file=self.stream, flush=True)
