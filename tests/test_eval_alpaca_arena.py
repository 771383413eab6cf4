"""AlpacaEval 2 and Arena-Hard v0.1 on real rows: FuseEval's exact prompts per family, the loaders (and their errors),
AlpacaEval scored by the real alpaca_eval package against a fake OpenAI-compatible judge on loopback that answers
the weighted annotator's one token with top logprobs, and Arena-Hard's two games, second attempt, Bradley-Terry
score and re-runs that make no judge call."""

import json
import re
from pathlib import Path

import pytest
import yaml

from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import alpaca_eval_run as ae
from fusechat_utils.evaluation import arena_hard as ah
from fusechat_utils.evaluation import judge
from fusechat_utils.loopback_judge import LoopbackJudge, one_token_logprobs

DATA = Path(__file__).resolve().parents[1] / "data" / "benchmarks"
ALPACA = DATA / "alpaca_eval" / "alpaca_eval_gpt4_baseline.json"
P_LONGER = 0.9  # the fake AlpacaEval judge's probability that the longer output is the better one


class Judge(LoopbackJudge):
    """/v1/chat/completions. AlpacaEval (system + user turns, logprobs asked): answers 'm' or 'M', the longer output
    with probability P_LONGER, top_logprobs for both; an output holding NOLOGPROBS gets a reply without logprobs;
    the model "no-such-model" gets a 404. Arena-Hard (a user turn opening with "<|User Prompt|>"): the longer answer
    wins (>> when twice as long), equal lengths tie; NOVERDICT in an answer gives no verdict until the judge is asked
    to continue; the label is written [[label]], or <<label>> when the system prompt asks for "<<label>>"."""

    def __init__(self):
        super().__init__(reply=self.answer)

    def respond(self, body, path, headers):
        assert path == "/v1/chat/completions", path
        assert headers["Authorization"] == "Bearer test-key"
        self.record(body)
        if body["model"] == "no-such-model":
            return 404, {"error": {"message": "The model does not exist", "type": "invalid"}}, {}
        return self.answered(body)

    @staticmethod
    def answer(body):
        msgs = body["messages"]
        if len(msgs) > 1 and msgs[1]["content"].startswith("<|User Prompt|>"):
            return Judge.arena(msgs), None
        assert body["logprobs"] is True and body["top_logprobs"] == 5 and body["max_tokens"] == 1
        text = msgs[-1]["content"]
        out_m, out_big_m = (re.search(r'"model_identifier": "%s",\s*"output": """(.*?)"""' % k, text, re.DOTALL)[1]
                            for k in ("m", "M"))
        if "NOLOGPROBS" in out_m + out_big_m:
            return "m", None
        return one_token_logprobs(P_LONGER if len(out_m) > len(out_big_m) else 1 - P_LONGER)

    @staticmethod
    def arena(msgs):
        last = msgs[-1]["content"]
        mark = "<<{}>>" if "<<label>>" in msgs[0]["content"] else "[[{}]]"
        if last == ah.CONTINUE:
            return "Continuing: my final verdict is tie: " + mark.format("A=B")
        a, b = re.findall(r"<\|The Start of Assistant [AB]'s Answer\|>\n(.*?)\n<\|The End", last, re.DOTALL)
        if "NOVERDICT" in a + b:
            return "Both answers have merit, and I am still weighing them..."
        if len(a) == len(b):
            return "My final verdict is tie: " + mark.format("A=B")
        strong = max(len(a), len(b)) >= 2 * min(len(a), len(b))
        label = ("A>>B" if strong else "A>B") if len(a) > len(b) else ("B>>A" if strong else "B>A")
        return "My final verdict: " + mark.format(label)


@pytest.fixture()
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with Judge() as judge:
        yield judge


# ---- prompts and decoding -----------------------------------------------------------------------------------------
def test_exact_prompt_per_family_for_a_real_instruction():
    item = ae.load(ALPACA)[0]
    q = "What are the names of some famous actors that started their careers on Broadway?"
    assert item["prompt"] == q and item["id"] == 0 and item["baseline_generator"] == "gpt4_1106_preview"
    # FuseEval IF-Eval/AlpacaEval-2/configs/{llama3,qwen_25,gemma2}.txt, written out from the notes
    assert ae.build_prompt(item, "llama3", None) == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat are the names of some famous actors that "
        "started their careers on Broadway?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert ae.build_prompt(item, "qwen25", None) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat are the names of some famous actors that started their careers on Broadway?"
        "<|im_end|>\n<|im_start|>assistant\n")
    assert ae.build_prompt(item, "gemma2", None) == (
        "<start_of_turn>user\nWhat are the names of some famous actors that started their careers on Broadway?"
        "<end_of_turn>\n<start_of_turn>model\n")
    question = ah.load()[0]
    assert question["id"] == "328c149ed45a41c0b9d6f14659e63599"
    assert ah.build_prompt(question, "gemma2") == ("<start_of_turn>user\nUse ABC notation to write a melody in the "
                                                   "style of a folk tune.<end_of_turn>\n<start_of_turn>model\n")
    # braces in an instruction stay as they are (alpaca_eval replaces the placeholder, it does not str.format)
    assert ae.build_prompt({"prompt": "f({x}) = {instruction}"}, "gemma2").startswith(
        "<start_of_turn>user\nf({x}) = {instruction}<end_of_turn>")
    with pytest.raises(UserError, match="prompt family"):
        ae.build_prompt(item, "mistral")


def test_decoding_is_what_fuseevals_vllm_call_applied():
    llama = ae.decoding("llama3")
    assert llama == {"temperature": 0.6, "top_p": 0.9, "max_tokens": 4096, "n": 1, "max_model_len": 4096,
                     "stop": ["<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"],
                     "stop_token_ids": [128001, 128009, 128006, 128007]}
    assert ae.decoding("llama3", as_yaml=True)["presence_penalty"] == 0.1
    qwen = ae.decoding("qwen25")
    assert (qwen["temperature"], qwen["top_p"], qwen["top_k"], "repetition_penalty" in qwen) == (0.7, 0.8, 20, False)
    assert ae.decoding("qwen25", as_yaml=True)["repetition_penalty"] == 1.05
    assert (ae.decoding("gemma2")["temperature"], ae.decoding("gemma2")["top_p"]) == (0.5, 1.0)
    for family in ae.FAMILIES:
        arena = ah.decoding(family)
        assert (arena["temperature"], arena["top_p"], arena["max_tokens"], arena["max_model_len"]) == (0, 1.0, 4096,
                                                                                                       4096)
        assert arena["stop"] == ae.decoding(family)["stop"] and "top_k" not in arena
    ae.decoding("llama3")["stop"].append("x")  # callers get copies
    assert len(ae.decoding("llama3")["stop"]) == 4


# ---- loaders ------------------------------------------------------------------------------------------------------
def test_loaders_read_the_real_files_and_name_bad_rows(tmp_path):
    items = ae.load(ALPACA)
    assert len(items) == 805 and len({it["instruction"] for it in items}) == 805
    legacy, current = ah.load(), ah.load(DATA / "arena_hard_v0.1" / "question.jsonl")
    assert len(legacy) == 500 and [(q["id"], q["prompt"]) for q in legacy] == [(q["id"], q["prompt"]) for q in current]
    baselines = json.loads(ah.BASELINES.read_text())
    by_id = {b["dataset"]: b["output"] for b in baselines}  # joined by text; the ids agree
    assert all(q["baseline"] == by_id[q["id"]] for q in legacy)

    rows = json.loads(ALPACA.read_text())[:3]
    del rows[1]["output"]
    bad = tmp_path / "alpaca.json"
    bad.write_text(json.dumps(rows))
    with pytest.raises(UserError, match=r"alpaca\.json: row 2: field 'output' must be a string"):
        ae.load(bad)
    lines = ah.QUESTIONS.read_text().splitlines()[:3]
    orphan = json.loads(lines[2])
    orphan["turns"][0]["content"] = "A question nobody answered"
    qfile = tmp_path / "question.jsonl"
    qfile.write_text("\n".join(lines[:2] + [json.dumps(orphan)]) + "\n")
    with pytest.raises(UserError, match=r"question\.jsonl: row 3: question '.+' has no baseline answer"):
        ah.load(qfile)
    qfile.write_text(lines[0] + "\n" + '{"question_id": "x", "turns": "text"}\n')
    with pytest.raises(UserError, match=r"row 2: field 'turns'"):
        ah.load(qfile)


# ---- AlpacaEval through the alpaca_eval package -------------------------------------------------------------------
def _alpaca_case(n=12):
    """the first n real rows; model answers, in turn: the baseline (a tie, never judged), two longer ones, a shorter
    one (an asymmetric mix: swapped outputs or preferences would not give the same win rate)"""
    items = ae.load(ALPACA)[:n]
    answers = []
    for i, it in enumerate(items):
        answers.append([it["baseline"] + "\n",  # stripped before judging: identical to the baseline
                        it["baseline"] + " More detail.", it["baseline"] + " Even more detail here.",
                        it["baseline"][:40]][i % 4])
    # preference 1 = baseline, 2 = model: the longer output wins with P_LONGER
    prefs = [[1.5, 1 + P_LONGER, 1 + P_LONGER, 2 - P_LONGER][i % 4] for i in range(n)]
    return items, answers, prefs


def _lc_minimal(preferences, model_outputs, base_outputs, tmp_path, monkeypatch):
    """alpaca_eval's length_controlled_minimal LC win rate (percent) of preferences (1 = baseline, 2 = model), its
    df_gamed.csv read answered by a stub (instruction difficulty 0, which that GLM does not use)."""
    import pandas as pd
    from alpaca_eval.metrics import get_length_controlled_winrate
    from alpaca_eval.metrics import glm_winrate

    n = len(preferences)
    stub = tmp_path / "df_gamed_stub.csv"
    pd.DataFrame({"model": "baseline", "index": range(n), "instruction_difficulty": 0.0}).to_csv(stub, index=False)
    monkeypatch.setattr(glm_winrate, "hf_hub_download", lambda **_kw: str(stub))
    df = pd.DataFrame({"preference": [float(p) for p in preferences], "output_1": base_outputs,
                       "output_2": model_outputs, "index": range(n), "generator_1": "baseline",
                       "generator_2": "model", "annotator": None})
    out = get_length_controlled_winrate(df, glm_name="length_controlled_minimal", save_weights_dir=None)
    return float(out["length_controlled_winrate"])


def test_alpaca_eval_lc_win_rate_and_a_rerun_without_judge_calls(server, tmp_path, monkeypatch):
    items, answers, prefs = _alpaca_case()
    out = tmp_path / "07_eval" / "alpaca_eval"
    res = ae.evaluate(items, answers, out, judge_base_url=server.url, judge_model="judge-m", name="tiny",
                      glm="length_controlled_minimal", concurrency=4)
    assert len(server.requests) == 9  # the 3 identical pairs need no judge
    expected = 100 * sum(p - 1 for p in prefs) / len(prefs)
    assert expected == pytest.approx(60.0)
    print(f"\nAlpacaEval on 12 real instructions: win rate {res['win_rate']:.2f} (expected {expected:.2f}), LC "
          f"{res['length_controlled_winrate']:.2f} ({res['glm_name']}), judge calls {len(server.requests)}")
    assert res["win_rate"] == pytest.approx(expected) and res["n_total"] == 12 and res["n_missing"] == 0
    # the same GLM fitted here on the expected preferences: the outputs reached alpaca_eval stripped, paired and in
    # order
    lc = _lc_minimal(prefs, [a.strip() for a in answers], [it["baseline"] for it in items], tmp_path, monkeypatch)
    assert res["length_controlled_winrate"] == pytest.approx(lc)
    assert res["length_controlled_winrate"] != pytest.approx(res["win_rate"]) and res["lc_standard_error"] > 0
    assert res["annotator"] == "weighted_alpaca_eval_gpt4_turbo__judge-m" and res["official"] is False
    # the package's own files, in the step folder
    config_dir = out / "alpaca_eval_annotators" / res["annotator"]
    config = yaml.safe_load((config_dir / "configs.yaml").read_text())[res["annotator"]]
    official = ae.official_config()
    assert config["fn_completion_parser"] == official["fn_completion_parser"] == "logprob_parser"
    assert config["completion_parser_kwargs"] == official["completion_parser_kwargs"]
    assert Path(config["prompt_template"]).read_text().startswith("<|im_start|>system\nYou are a highly efficient")
    assert config["completions_kwargs"]["model_name"] == "judge-m"
    assert (config_dir / "annotations_seed0_configs.json").is_file()
    assert {"leaderboard.csv", "annotations.json", "model_outputs.json"} <= {p.name for p in out.iterdir()}
    # every request is the official prompt with a real instruction and its real baseline output
    first = server.requests[0]["messages"]
    assert first[0]["role"] == "system" and first[0]["content"].startswith("You are a highly efficient assistant")
    assert any(it["instruction"] in first[1]["content"] and it["baseline"] in first[1]["content"] for it in items)

    before = len(server.requests)
    again = ae.evaluate(items, answers, out, judge_base_url=server.url, judge_model="judge-m", name="tiny",
                        glm="length_controlled_minimal")
    assert len(server.requests) == before and again["win_rate"] == res["win_rate"]
    assert again["length_controlled_winrate"] == pytest.approx(res["length_controlled_winrate"])
    # another judge model is another annotator: asked again
    ae.evaluate(items[:6], answers[:6], out, judge_base_url=server.url, judge_model="judge-other",
                glm="length_controlled_minimal")
    assert len(server.requests) == before + 4


def test_alpaca_eval_unparsed_judgments_are_not_cached(server, tmp_path):
    items, answers, _ = _alpaca_case(10)
    answers[1] = answers[1] + " NOLOGPROBS"
    out = tmp_path / "alpaca_eval"
    res = ae.evaluate(items, answers, out, judge_base_url=server.url, judge_model="judge-m",
                      glm="length_controlled_minimal")
    assert res["n_missing"] == 1 and res["n_total"] == 9
    before = len(server.requests)
    ae.evaluate(items, answers, out, judge_base_url=server.url, judge_model="judge-m",
                glm="length_controlled_minimal")
    assert len(server.requests) == before + 1  # only the unparsed one is asked again
    with pytest.raises(judge.JudgeError, match=r"AlpacaEval judge 'no-such-model' at http://127\.0\.0\.1:\d+/v1: "
                                                r"NotFoundError"):
        ae.evaluate(items, answers, out, judge_base_url=server.url, judge_model="no-such-model",
                    glm="length_controlled_minimal")


def test_official_lc_reads_df_gamed_and_fails_before_any_judge_call_without_it(server, tmp_path, monkeypatch):
    import huggingface_hub.constants

    items, answers, _ = _alpaca_case(10)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="df_gamed.csv"):
        ae.evaluate(items, answers, tmp_path / "a", judge_base_url=server.url, judge_model="judge-m")
    assert server.requests == []
    with pytest.raises(UserError, match="file order"):
        ae.evaluate(items[1:], answers[1:], tmp_path / "a", judge_base_url=server.url, df_gamed=tmp_path / "x.csv")
    # a df_gamed.csv of the hub file's shape (two gamed baselines): alpaca_eval's length_controlled_v1 runs on it
    import pandas as pd

    rows = [{"model": m, "index": i, "instruction_difficulty": 0.1 * (i % 5), "preference": p,
             "std_delta_len": d, "not_gamed_baseline": False}
            for m, p, d in (("verbose", 0.7, -1.0), ("concise", 0.3, 1.0)) for i in range(10)]
    gamed = tmp_path / "df_gamed.csv"
    pd.DataFrame(rows).to_csv(gamed, index=False)
    res = ae.evaluate(items, answers, tmp_path / "b", judge_base_url=server.url, judge_model="gpt-4-1106-preview",
                      df_gamed=gamed)
    assert res["glm_name"] == "length_controlled_v1" and res["official"] is True
    assert res["annotator"] == "weighted_alpaca_eval_gpt4_turbo" and 0 <= res["length_controlled_winrate"] <= 100
    assert (tmp_path / "b" / "glm_weights" / "length_controlled_v1").is_dir()
    rows = ae.result_rows("m", "sft", res)
    assert [r["metric"] for r in rows] == ["lc_win_rate", "win_rate"]
    assert rows[0]["value"] == res["length_controlled_winrate"]


# ---- Arena-Hard ---------------------------------------------------------------------------------------------------
def _edited_yaml(tmp_path, name="judge_config.yaml", **changes):
    raw = yaml.safe_load(ah.JUDGE_CONFIG.read_text())
    raw.update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def test_judge_settings_come_from_the_yaml_and_unsupported_ones_are_refused(tmp_path):
    settings = ah.judge_settings()
    raw = yaml.safe_load(ah.JUDGE_CONFIG.read_text())
    assert (settings["judge_model"], settings["baseline_model"], settings["temperature"], settings["max_tokens"],
            settings["number_of_judgment_attempts"]) == ("gpt-4-1106-preview", "gpt-4-0314", 0, 4096, 2)
    assert (settings["system_prompt"], settings["prompt_template"], settings["regex_pattern"]) == (
        raw["system_prompt"], raw["prompt_template"], r"\[\[([AB<>=]+)\]\]")
    assert settings["system_prompt"].startswith("Please act as an impartial judge")
    # one game's conversation: the YAML's system prompt and its template with question_1 / answer_1 / answer_2
    assert ah.arena_messages("Q?", "first", "second", settings) == [
        {"role": "system", "content": raw["system_prompt"]},
        {"role": "user", "content": "<|User Prompt|>\nQ?\n\n<|The Start of Assistant A's Answer|>\nfirst\n"
                                    "<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n"
                                    "second\n<|The End of Assistant B's Answer|>"}]
    # get_score: one label, none (try again), conflicting labels (give up)
    assert ah.arena_verdict("so: [[B>A]] and again [[B>A]]", settings) == ("B>A", False)
    assert ah.arena_verdict("no label yet", settings) == (None, True)
    assert ah.arena_verdict("[[A>B]] or [[B>A]]", settings) == (None, False)

    # what the kit does not implement is refused, naming the setting, before any judge call
    dead = judge.JudgeClient("http://127.0.0.1:9/v1", "m", max_retries=0)
    refused = {"reference True": dict(reference=True, ref_model=["gpt-4-0314"]),
               "pairwise False": dict(pairwise=False), "baseline False": dict(baseline=False),
               "prompt_template": dict(prompt_template=[raw["prompt_template"][0], "{question_2}"]),
               "ref_answer_1": dict(prompt_template=[raw["prompt_template"][0] + "{ref_answer_1}"]),
               "capture group": dict(regex_pattern=r"\[\[[AB<>=]+\]\]"),
               "not a regular expression": dict(regex_pattern="[[("),
               "number_of_judgment_attempts": dict(number_of_judgment_attempts=0)}
    for i, (what, change) in enumerate(refused.items()):
        path = _edited_yaml(tmp_path, f"refused{i}.yaml", **change)
        with pytest.raises(UserError, match=re.escape(what)):
            ah.judge_settings(path)
        with pytest.raises(UserError, match=re.escape(what)):
            ah.judge_answers(dead, [], [], config=path)
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump({k: v for k, v in raw.items() if k != "system_prompt"}))
    with pytest.raises(UserError, match="missing system_prompt"):
        ah.judge_settings(bare)


def test_an_edited_yaml_changes_what_is_sent_and_how_it_is_parsed(server, tmp_path):
    items = ah.load()[:2]
    answers = [it["baseline"] + it["baseline"] for it in items]  # twice as long: strong wins in both positions
    raw = yaml.safe_load(ah.JUDGE_CONFIG.read_text())
    # another system prompt, regex, temperature and max_tokens: sent and parsed as the YAML says
    system = raw["system_prompt"] + " Write the label as <<label>>."
    edited = _edited_yaml(tmp_path, system_prompt=system, regex_pattern="<<([AB<>=]+)>>", temperature=0.5,
                          max_tokens=1000)
    client = judge.JudgeClient(server.url, "j", cache_path=tmp_path / "c.jsonl")
    rows = ah.judge_answers(client, items, answers, config=edited)
    assert [[g["score"] for g in r["games"]] for r in rows] == [["B>>A", "A>>B"]] * 2 and client.calls == 4
    assert all(r["messages"][0]["content"] == system and r["temperature"] == 0.5 and r["max_tokens"] == 1000
               for r in server.requests)
    assert all("<<B>>A>>" in r["games"][0]["judgment"] for r in rows)
    # the same server output under the real YAML's regex: no [[label]] ever parses; each game is asked
    # number_of_judgment_attempts times (the continue turn in between) and counts nothing
    server.requests.clear()
    mismatched = _edited_yaml(tmp_path, "mismatched.yaml", system_prompt=system, number_of_judgment_attempts=3)
    rows = ah.judge_answers(judge.JudgeClient(server.url, "j"), items, answers, config=mismatched)
    assert [[g["score"] for g in r["games"]] for r in rows] == [[None, None]] * 2 and len(server.requests) == 4 * 3
    last = max(server.requests, key=lambda r: len(r["messages"]))["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert last[3]["content"] == last[5]["content"] == ah.CONTINUE
    with pytest.raises(ValueError, match="no battles"):
        ah.score(rows)


def test_arena_two_games_retry_bt_score_and_rerun(server, tmp_path):
    items = ah.load()[:8]
    answers = []
    for i, it in enumerate(items):
        base = it["baseline"]
        answers.append([base + base,  # twice as long: strong win in both positions
                        base + "\nA short addendum.",  # slightly longer: a win
                        base[: len(base) // 3],  # much shorter: a strong loss
                        "  " + base + "  \n",  # the same once stripped: ties
                        "NOVERDICT " + base][i % 5])
    client = judge.JudgeClient(server.url, "gpt-4-1106-preview", cache_path=tmp_path / "judge_cache.jsonl",
                               concurrency=4)
    rows = ah.judge_answers(client, items, answers)
    games = [[g["score"] for g in r["games"]] for r in rows]
    expected = [["B>>A", "A>>B"], ["B>A", "A>B"], ["A>>B", "B>>A"], ["A=B", "A=B"], ["A=B", "A=B"]]
    assert games == [expected[i % 5] for i in range(8)]
    # 16 games, one of them (item 4) twice over: no verdict, then the continue turn
    assert client.calls == 16 + 2 and "still weighing" in rows[4]["games"][0]["judgment"]
    # the exact judge conversation of item 0, game 1 (baseline = A) and game 2 (swapped), from the YAML
    settings = ah.judge_settings()
    template = settings["prompt_template"][0]
    for a, b in ((items[0]["baseline"], answers[0]), (answers[0], items[0]["baseline"])):
        want = [{"role": "system", "content": settings["system_prompt"]},
                {"role": "user", "content": template.format(question_1=items[0]["prompt"], answer_1=a, answer_2=b)}]
        assert any(r["messages"] == want and r["temperature"] == 0 and r["max_tokens"] == 4096
                   for r in server.requests)

    # battles: 2 x (3 + 3) strong wins (items 0, 5), 2 x (1 + 1) wins (1, 6), 2 x (3 + 3) strong losses (2, 7),
    # 2 + 2 ties (3, 4): the two-player BT fit is the win share with ties halved
    s = ah.score(rows)
    wins, losses, ties = 12 + 4, 12, 4
    print(f"\nArena-Hard BT on 8 real questions: {s['score']:.2f} [{s['lower']:.2f}, {s['upper']:.2f}], "
          f"{s['n_battles']} battles, judge calls {client.calls}")
    assert s["n_battles"] == wins + losses + ties
    assert s["score"] == pytest.approx(100 * (wins + ties / 2) / (wins + losses + ties), abs=1e-3)
    assert s["lower"] < s["score"] < s["upper"]
    assert [r["metric"] for r in ah.result_rows("m", "sft", rows)] == ["bt_win_rate", "bt_win_rate_ci95_lower",
                                                                       "bt_win_rate_ci95_upper"]

    before = len(server.requests)
    again = judge.JudgeClient(server.url, "gpt-4-1106-preview", cache_path=tmp_path / "judge_cache.jsonl")
    assert ah.judge_answers(again, items, answers) == rows
    assert again.calls == 0 and len(server.requests) == before
