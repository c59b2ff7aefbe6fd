"""Online RL (trl GRPO/RLOO) of a tiny policy against the local toxicity classifier, and the evaluation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "data" / "align" / "toxicity.jsonl"
METRIC_KEYS = {
    "method",
    "algorithm",
    "beta",
    "reward_before",
    "reward_after",
    "reward_gain",
    "kl_final",
    "toxicity_before",
    "toxicity_after",
    "toxicity_improvement",
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """The classifier, a tiny policy pre-trained on polite and hostile replies, and prompt files."""
    from genai_runtime.align.toxicity import (
        HELD_OUT_PROMPTS,
        PROMPTS,
        read_labelled,
        train_classifier,
        write_prompts,
        write_tiny_policy,
    )

    root = tmp_path_factory.mktemp("align_rl")
    rows = read_labelled(DATA)
    return {
        "classifier": Path(train_classifier(rows, root / "classifier", seed=0).model_dir),
        "policy": write_tiny_policy(root / "policy", rows, seed=0),
        "prompts": write_prompts(root / "prompts.jsonl", PROMPTS),
        "held_out": write_prompts(root / "held_out.jsonl", HELD_OUT_PROMPTS),
    }


def _config(setup, out: Path, **overrides):
    from genai_runtime.align.rl import RewardSpec, RLConfig

    values = {
        "policy": setup["policy"],
        "prompts": setup["prompts"],
        "eval_prompts": setup["held_out"],
        "output_dir": out,
        "rewards": [RewardSpec("classifier", str(setup["classifier"]))],
        "learning_rate": 1e-2,
        "max_steps": 30,
        "num_generations": 4,
        "prompts_per_step": 4,
        "eval_samples": 4,
        "seed": 0,
    }
    values.update(overrides)
    return RLConfig(**values)


@pytest.fixture(scope="module")
def grpo_run(setup, tmp_path_factory):
    from genai_runtime.align.rl import run_rl

    before = hashlib.sha256((setup["policy"] / "model.safetensors").read_bytes()).hexdigest()
    out = tmp_path_factory.mktemp("grpo") / "run"
    result = run_rl(_config(setup, out), progress=False)
    after = hashlib.sha256((setup["policy"] / "model.safetensors").read_bytes()).hexdigest()
    return {"result": result, "out": out, "base_unchanged": before == after}


def test_grpo_raises_the_reward_and_lowers_toxicity(grpo_run):
    result = grpo_run["result"]
    assert result.steps == 30 and result.stopped_by == "max_steps"
    assert result.reward_after > result.reward_before
    assert result.toxicity_after < result.toxicity_before
    assert result.toxicity_improvement > 0
    assert result.kl_final > 0  # the policy moved away from the reference


def test_metrics_and_the_per_step_log_are_written(grpo_run):
    out = grpo_run["out"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["method"] == "rl" and metrics["algorithm"] == "grpo" and metrics["beta"] == 0.05
    assert metrics["reward_gain"] == pytest.approx(metrics["reward_after"] - metrics["reward_before"], abs=1e-3)
    log = [json.loads(line) for line in (out / "rl_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, 31))
    for entry in log:
        assert entry["reward"] is not None and entry["kl"] is not None and entry["completion_length"] > 0
        assert 0.0 <= entry["toxicity"] <= 1.0
    half = len(log) // 2
    assert sum(e["reward"] for e in log[half:]) > sum(e["reward"] for e in log[:half])


def test_only_the_lora_adapter_changes(grpo_run):
    from safetensors.torch import load_file

    model_dir = grpo_run["out"] / "model"
    assert (model_dir / "adapter_config.json").is_file() and not (model_dir / "model.safetensors").exists()
    weights = load_file(model_dir / "adapter_model.safetensors")
    assert weights and all("lora_" in name for name in weights)
    assert any(float(w.abs().sum()) > 0 for name, w in weights.items() if "lora_B" in name)  # B starts at zero
    assert grpo_run["base_unchanged"]
    result = grpo_run["result"]
    assert result.trainable_parameters < result.total_parameters / 10


def test_target_reward_stops_early(setup, tmp_path):
    from genai_runtime.align.rl import run_rl

    result = run_rl(_config(setup, tmp_path / "run", target_reward=0.0, max_steps=10, eval_samples=1), progress=False)
    assert result.stopped_by == "target_reward" and result.steps == 1
    assert len((tmp_path / "run" / "rl_log.jsonl").read_text().splitlines()) == 1


def test_target_toxicity_stops_early(setup, tmp_path):
    from genai_runtime.align.rl import run_rl

    result = run_rl(_config(setup, tmp_path / "run", target_toxicity=1.0, max_steps=10, eval_samples=1), progress=False)
    assert result.stopped_by == "target_toxicity" and result.steps == 1


def test_rloo_runs_with_a_python_reward_and_no_classifier(setup, tmp_path, monkeypatch):
    from genai_runtime.align.rl import RewardSpec, run_rl

    module = tmp_path / "length_reward.py"
    module.write_text("def shorter(prompts, completions, **kw):\n    return [-len(c) / 100 for c in completions]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = _config(setup, tmp_path / "run", algorithm="rloo", rewards=[RewardSpec("python", "length_reward:shorter")])
    config.max_steps, config.eval_samples = 3, 1
    run_rl(config, progress=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["algorithm"] == "rloo" and "toxicity_before" not in metrics
    assert {"reward_before", "reward_after", "kl_final"} <= set(metrics)


def test_bad_settings_are_refused(setup, tmp_path):
    from genai_runtime.align.rl import RewardSpec
    from genai_runtime.errors import UsageError

    with pytest.raises(UsageError, match="--algorithm"):
        _config(setup, tmp_path, algorithm="ppo")
    with pytest.raises(UsageError, match="--target-toxicity"):
        _config(setup, tmp_path, rewards=[RewardSpec("python", "json:dumps")], target_toxicity=0.1)
    with pytest.raises(UsageError, match="--beta"):
        _config(setup, tmp_path, beta=-1.0)


def test_relative_improvement_is_the_books_arithmetic():
    from genai_runtime.align.rl import relative_improvement

    assert relative_improvement(0.0323, 0.0272) == pytest.approx((0.0323 - 0.0272) / 0.0323, abs=1e-4)
    assert relative_improvement(0.0323, 0.0272) == pytest.approx(0.158, abs=1e-3)
    assert relative_improvement(0.0, 0.1) is None


def test_cli_evaluate_writes_the_documented_report(setup, grpo_run, tmp_path):
    from genai_runtime.cli import main

    out = tmp_path / "eval"
    code = main(
        [
            "align",
            "evaluate",
            f"--base={setup['policy']}",
            f"--tuned={grpo_run['out'] / 'model'}",
            f"--classifier={setup['classifier']}",
            "--label=not_toxic",
            f"--prompts={setup['held_out']}",
            f"--out={out}",
        ]
    )
    assert code == 0
    report = json.loads((out / "evaluation.json").read_text())
    toxicity = report["toxicity"]
    assert set(toxicity["before"]) == {"mean", "std"} and set(toxicity["after"]) == {"mean", "std"}
    before, after = toxicity["before"]["mean"], toxicity["after"]["mean"]
    assert toxicity["relative_improvement"] == pytest.approx((before - after) / before, abs=2e-3)
    assert after < before
    assert report["samples"] and {"prompt", "before", "after"} <= set(report["samples"][0])
    assert (out / "evaluation.png").stat().st_size > 0


def test_cli_rl_with_a_reward_spec(setup, tmp_path):
    from genai_runtime.cli import main

    out = tmp_path / "cli"
    code = main(
        [
            "align",
            "rl",
            f"--policy={setup['policy']}",
            f"--prompts={setup['prompts']}",
            f"--reward=classifier:{setup['classifier']},label=not_toxic,output=logit",
            "--algorithm=rloo",
            "--beta=0",
            "--max-steps=2",
            f"--out={out}",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["beta"] == 0 and metrics["algorithm"] == "rloo" and metrics["steps"] == 2
    assert "toxicity_after" in metrics


def test_a_jobs_hyperparameters_become_rl_flags():
    from genai_runtime.cli import build_parser
    from genai_runtime.cli.align_rl import _apply_hyperparameters
    from genai_runtime.errors import UsageError

    args = build_parser().parse_args(["align", "rl", "--max-steps=7"])
    hyperparameters = {"max_steps": "2", "beta": "0", "reward": "classifier:/opt/ml/input/data/classifier,label=x"}
    _apply_hyperparameters(args, {**hyperparameters, "algorithm": "rloo", "full": "true"})
    assert args.max_steps == 7  # the command line wins
    assert args.beta == 0.0 and args.algorithm == "rloo" and args.full is True
    assert args.reward == ["classifier:/opt/ml/input/data/classifier,label=x"]
    with pytest.raises(UsageError, match="--epochs"):
        _apply_hyperparameters(build_parser().parse_args(["align", "rl"]), {"epochs": "3"})
