"""What `fusechat run` shows while a step runs: the step's own output lines as they come, without the flood.

The runner hands StepOutput to papermill as `stdout_file` / `stderr_file`, which get every stream message of the
kernel as it arrives. Complete lines go to the terminal prefixed by the step (`  05_sft | step 20/1200: loss ...`),
at most MAX_CHARS each, a line equal to the one before dropped. Progress bars (tqdm redraws its bar many times a
second, ending each redraw with a carriage return) are shown at most once per `bar_interval_s` per bar, plus
their finished state; a bar's 0 % is not shown, so a quick one (tokenizing a dataset) is one line. The full output stays in the executed notebook.
"""

from __future__ import annotations

import re
import time

# tqdm's bar: "desc:  40%|████      | 4/10 [00:01<00:02, 3.2it/s]"
BAR = re.compile(r"^(?P<label>.*?)\s*(?P<pct>\d{1,3})%\|")
MAX_CHARS = 240
BAR_INTERVAL_S = 10.0


class StepOutput:
    """A write-only text sink for one stream of one step (papermill calls write() and flush())."""

    def __init__(self, step: str, log, bar_interval_s: float = BAR_INTERVAL_S, clock=time.monotonic):
        self.step, self.log, self.interval, self.clock = step, log, bar_interval_s, clock
        self.pending = ""
        self.last_line: str | None = None
        self.bar_shown: dict[str, float] = {}  # bar label -> when it was last shown

    def write(self, text: str) -> int:
        *lines, self.pending = re.split(r"\r\n|\r|\n", self.pending + text)
        for line in lines:
            self._show(line)
        return len(text)

    def flush(self) -> None:
        """Nothing buffered but a partial line, which waits for its end."""

    def close(self) -> None:
        if self.pending:
            self._show(self.pending)
            self.pending = ""

    def _show(self, line: str) -> None:
        line = line.rstrip()
        if not line.strip() or line == self.last_line:
            return
        bar = BAR.match(line)
        if bar:
            now, label, pct = self.clock(), bar.group("label"), bar.group("pct")
            last = self.bar_shown.get(label)
            if pct != "100" and (pct == "0" or (last is not None and now - last < self.interval)):
                return
            self.bar_shown[label] = now
        self.last_line = line
        shown = line if len(line) <= MAX_CHARS else line[:MAX_CHARS - 1] + "…"
        self.log(f"  {self.step} | {shown}", flush=True)
