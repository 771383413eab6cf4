"""Progress lines: at most one per interval, with done/total, tokens/s and ETA; silent for short loops."""

import io

from fusechat_utils.progress import Progress


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_lines_come_at_most_once_per_interval_with_rate_and_eta():
    clock, out = FakeClock(), io.StringIO()
    p = Progress("07 GSM8K base", total=100, unit="prompts", every_s=30, stream=out, now=clock)
    for t, tokens in ((10, 500), (31, 500), (45, 500), (62, 500)):
        clock.t = t
        p.update(10, tokens=tokens)
    lines = out.getvalue().splitlines()
    assert lines == ["[07 GSM8K base] 20/100 prompts (20.0 %), 32.3 tok/s, elapsed 0m31s, ETA 2m04s",
                     "[07 GSM8K base] 40/100 prompts (40.0 %), 32.3 tok/s, elapsed 1m02s, ETA 1m33s"]
    clock.t = 100
    p.update(60, tokens=0)  # the last batch: no line of its own, the closing line says it
    p.done()
    assert out.getvalue().splitlines()[-1] == "[07 GSM8K base] 100/100 prompts (100.0 %), 20.0 tok/s, elapsed 1m40s"


def test_a_short_loop_prints_nothing():
    clock, out = FakeClock(), io.StringIO()
    p = Progress("02 hf src", total=4, every_s=30, stream=out, now=clock)
    clock.t = 5
    p.update(4, tokens=100)
    p.done()
    assert out.getvalue() == ""
