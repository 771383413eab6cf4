"""Progress lines for long loops: at most one every `every_s` seconds (and one at the end), so a step that runs
for minutes says how far it is in the CLI and in papermill's log without flooding either.

Line: `[07 GSM8K base] 128/1319 prompts (9.7 %), 412.3 tok/s, elapsed 3m10s, ETA 29m27s`, on stderr.
Usage: `p = Progress("07 GSM8K base", total=1319)`; `p.update(64, tokens=8123)` per batch; `p.done()`.
vLLM counts its own requests: `llm.generate(..., use_tqdm=vllm_progress("07 GSM8K base"))` prints the same kind of
line (requests done, vLLM's token rates, ETA) from inside its engine loop.
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


class _Nowhere:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def vllm_progress(label: str, every_s: float = 30.0):
    """A tqdm class for vLLM's `LLM.generate(use_tqdm=...)`: a whole line every `every_s` seconds and one at the
    end, none for a call shorter than `every_s` (as Progress).

    tqdm's own bar redraws one line with carriage returns, which the CLI's line relay and papermill's log hold back
    until the bar closes; this one ends every line. Imported in the vLLM venv, which has tqdm (vLLM needs it).
    """
    from tqdm import tqdm

    class Lines(tqdm):
        def __init__(self, *args, **kwargs):
            self.out = sys.stderr  # tqdm's own writes (a closing newline, carriage returns) go to _Nowhere
            kwargs.update(desc=label, mininterval=every_s, miniters=1, file=_Nowhere(), dynamic_ncols=False,
                          bar_format="[{desc}] {n_fmt}/{total_fmt} requests ({percentage:.1f} %), elapsed {elapsed}, "
                                     "ETA {remaining}{postfix}")
            self.began, self.shown = time.monotonic(), None
            super().__init__(*args, **kwargs)

        def display(self, msg=None, pos=None):
            if self.n != self.shown and time.monotonic() - self.began >= every_s:
                print(self.__str__(), file=self.out, flush=True)
                self.shown = self.n
            return True

    return Lines
