"""The toy world's mechanisms, read off the session's real toy run with `fusechat_utils.toy.diagnostics`: each
source is the best at its own domain and carries its style; same-source pairs are truly better by the grader and
style-neutral; the general pairs teach the general specialist's blind spot ("twice"), not the word itself."""

import pytest

from fusechat_utils.toy import diagnostics
from fusechat_utils.toy.tasks import PERSONAS


@pytest.mark.slow
def test_sources_are_specialists_with_styles(toy_run):
    run_dir, _ = toy_run
    table = diagnostics.source_table(run_dir)
    for name, persona in PERSONAS.items():
        domain = table.xs(persona["strong"], level="category").loc[list(PERSONAS), "accuracy_pct"]
        assert domain.idxmax() == name, (persona["strong"], domain.to_dict())
        assert 0 < domain[name] < 100 or persona["strong"] == "chinese"  # right often, not always (5 % near misses)
        styled = table.loc[(name, "general"), "styled_pct"]
        assert styled > 90 if persona["style"] else styled == 0, (name, styled)


@pytest.mark.slow
def test_same_source_pairs_are_better_and_style_neutral_and_teach_the_blind_spot(toy_run):
    run_dir, _ = toy_run
    audit = diagnostics.pair_audit(run_dir).loc["general"]
    assert audit["same_source_pct"] == 100 and audit["truly_better_pct"] > audit["truly_worse_pct"] + 50, audit
    assert abs(audit["chosen_verbose_pct"] - audit["rejected_verbose_pct"]) < 5, audit
    taught = diagnostics.instruction_audit(run_dir)
    assert taught.loc["twice", "taught_pct"] > 50 and taught.loc["content", "taught_pct"] < 5, taught
    assert taught.loc["content", "sft_follows_pct"] > taught.loc["content", "base_follows_pct"] + 10, taught
    shapes = diagnostics.answer_shapes(run_dir)
    assert shapes.loc["base", "twice_one_copy_pct"] > 50 > shapes.loc["sft", "twice_one_copy_pct"] + 20, shapes
    assert diagnostics.dpo_log(run_dir)["eval_rewards/accuracies"] > 0.6
