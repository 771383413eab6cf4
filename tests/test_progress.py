"""Progress lines: at most one per interval, with done/total, tokens/s and ETA; silent for short loops."""

import io

from fusechat_utils.progress import Progress, vllm_progress


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


def test_vllm_progress_prints_whole_lines_once_per_count(capsys):
    """Driven as vLLM's engine loop drives its bar (common/offline.py): postfix set, update(1), refresh at the
    end, close. every_s=0 makes every update due, so the lines are exact."""
    bar = vllm_progress("02 src batch 1/1", every_s=0)(total=3, desc="Processed prompts", dynamic_ncols=True,
                                                         postfix="est. speed input: 0.00 toks/s, output: 0.00 toks/s")
    for i in range(3):
        bar.postfix = f"est. speed input: {i}.00 toks/s, output: 1.00 toks/s"
        bar.update(1)
    bar.refresh()
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert [line.split("]")[1].split(" requests")[0] for line in lines] == [" 0/3", " 1/3", " 2/3", " 3/3"]
    assert all(line.startswith("[02 src batch 1/1] ") for line in lines)
    assert lines[-1].endswith("est. speed input: 2.00 toks/s, output: 1.00 toks/s")


def test_vllm_progress_is_silent_for_a_short_call(capsys):
    bar = vllm_progress("07 x", every_s=3600)(total=2)
    bar.update(2)
    bar.close()
    assert capsys.readouterr().err == ""
