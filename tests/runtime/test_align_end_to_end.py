"""The chapter as a user runs it, from the CLI on tiny models: human rankings (A2I output) -> pairs ->
reward model -> RL with a KL bound against that reward model and a toxicity classifier -> evaluate.

Each step's own tests check its direction (tests/runtime/test_align_*.py); this one checks that the
steps compose: each consumes exactly what the previous one wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "align"
pytestmark = pytest.mark.slow


def test_rankings_to_pairs_to_reward_model_to_rl_to_evaluate(tmp_path):
    from genai_runtime.align.toxicity import HELD_OUT_PROMPTS, PROMPTS, train_classifier, write_tiny_policy
    from genai_runtime.cli import main

    rows = [json.loads(line) for line in (DATA / "toxicity.jsonl").read_text().splitlines() if line.strip()]
    policy = write_tiny_policy(tmp_path / "policy", rows, seed=0, steps=60)
    classifier = Path(train_classifier(rows, tmp_path / "classifier", seed=0).model_dir)

    pairs = tmp_path / "pairs.jsonl"
    assert main(["align", "pairs", str(DATA / "ranking" / "a2i"), "--out", str(pairs)]) == 0
    assert sum(1 for line in pairs.read_text().splitlines() if line.strip()) >= 3  # 3 responses -> 3 pairs each

    reward = tmp_path / "reward"
    assert (
        main(
            ["align", "reward", "--model", str(policy), "--data", str(pairs), "--out", str(reward)]
            + ["--max-steps", "4", "--validation-fraction", "0.34"]
        )
        == 0
    )
    assert json.loads((reward / "metrics.json").read_text())["method"] == "reward"

    prompts, held_out = tmp_path / "prompts.jsonl", tmp_path / "held_out.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    held_out.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in HELD_OUT_PROMPTS))
    tuned = tmp_path / "tuned"
    rl = ["align", "rl", "--policy", str(policy), "--prompts", str(prompts), "--eval-prompts", str(held_out)]
    rl += ["--out", str(tuned), "--reward", f"reward-model:{reward / 'model'},weight=0.5"]
    rl += ["--reward", f"classifier:{classifier},label=not_toxic", "--max-steps", "3", "--beta", "0.05"]
    assert main(rl) == 0
    metrics = json.loads((tuned / "metrics.json").read_text())
    assert metrics["method"] == "rl" and metrics["beta"] == 0.05
    assert {"reward_before", "reward_after", "reward_gain", "kl_final", "toxicity_improvement"} <= set(metrics)
    steps = [json.loads(line) for line in (tuned / "rl_log.jsonl").read_text().splitlines() if line.strip()]
    assert len(steps) >= 1 and {"reward", "kl"} <= set(steps[-1])

    report = tmp_path / "report"
    evaluate = ["align", "evaluate", "--base", str(policy), "--tuned", str(tuned / "model")]
    evaluate += ["--classifier", str(classifier), "--label", "not_toxic", "--prompts", str(held_out)]
    assert main([*evaluate, "--reward-model", str(reward / "model"), "--out", str(report)]) == 0
    evaluation = json.loads((report / "evaluation.json").read_text())
    assert {"before", "after", "relative_improvement"} <= set(evaluation["toxicity"])
    assert {"before", "after", "gain"} <= set(evaluation["reward"]) and evaluation["samples"]
