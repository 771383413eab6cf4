"""Progress lines for long loops: at most one every `every_s` seconds (and one at the end), so a step that runs
for minutes says how far it is in the CLI and in papermill's log without flooding either.

Line: `[07 GSM8K base] 128/1319 prompts (9.7 %), 412.3 tok/s, elapsed 3m10s, ETA 29m27s`, on stderr.
Usage: `p = Progress("07 GSM8K base", total=1319)`; `p.update(64, tokens=8123)` per batch; `p.done()`.
"""

from __future__ import annotations

import sys
import time


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    def __init__(self, label: str, total: int, unit: str = "items", every_s: float = 30.0, stream=None,
                 now=time.monotonic):
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.stream, self.now = stream, now
        self.done_items = self.tokens = 0
        self.started = self.last = now()

    def line(self) -> str:
        elapsed = max(self.now() - self.started, 1e-9)
        share = 100 * self.done_items / self.total if self.total else 100.0
        parts = [f"[{self.label}] {self.done_items}/{self.total} {self.unit} ({share:.1f} %)"]
        if self.tokens:
            parts.append(f"{self.tokens / elapsed:.1f} tok/s")
        parts.append(f"elapsed {clock(elapsed)}")
        if 0 < self.done_items < self.total:
            parts.append(f"ETA {clock(elapsed * (self.total - self.done_items) / self.done_items)}")
        return ", ".join(parts)

    def _emit(self) -> None:
        print(self.line(), file=self.stream or sys.stderr, flush=True)
        self.last = self.now()

    def update(self, items: int, tokens: int = 0) -> None:
        self.done_items += items
        self.tokens += tokens
        if self.now() - self.last >= self.every_s and self.done_items < self.total:
            self._emit()

    def done(self) -> None:
        """The closing line, printed only when the loop ran long enough to have been worth a progress line."""
        if self.now() - self.started >= self.every_s:
            self._emit()
