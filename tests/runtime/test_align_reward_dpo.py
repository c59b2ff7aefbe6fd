"""`genai align reward|dpo` on a tiny Llama and 48 synthetic pairs whose preferred response is polite
("Thank you for asking" vs "Go away"): held-out accuracy rises, LoRA trains adapters only, the scorer
serves the RL step, configs name bad keys and take the SageMaker contract, the CLI runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genai_runtime.align.config import load_dpo_config, load_reward_config
from genai_runtime.errors import UsageError

PAIRS = Path(__file__).resolve().parents[1] / "data" / "align" / "pairs.jsonl"
FAST = {"training.max_steps": 20, "training.learning_rate": 3e-3, "training.logging_steps": 5, "lora.r": 4}


def _reward_config(tiny_model, out, **overrides):
    return load_reward_config(
        overrides={"model": str(tiny_model), "data.train": str(PAIRS), "output_dir": str(out), **FAST, **overrides},
        environ={},
    )


@pytest.fixture(scope="module")
def reward_run(tiny_model, tmp_path_factory):
    from genai_runtime.align.reward import run_reward

    out = tmp_path_factory.mktemp("reward")
    return out, run_reward(_reward_config(tiny_model, out), progress=False)


def test_reward_model_learns_the_preference_on_held_out_prompts(reward_run):
    out, metrics = reward_run
    written = json.loads((out / "metrics.json").read_text())
    assert written["method"] == "reward" and written["pairs"] == metrics["pairs"] > 0
    assert written["pairwise_accuracy"] > written["pairwise_accuracy_before"]
    assert written["pairwise_accuracy"] > 0.5
    assert written["reward_margin"] > written["reward_margin_before"]
    assert 0 < metrics["trainable_parameters"] < metrics["total_parameters"] / 10  # LoRA + the score head


def test_the_scorer_rewards_the_preferred_response(reward_run):
    from genai_runtime.align.reward import RewardModelScorer

    out, _ = reward_run
    scorer = RewardModelScorer(out / "model")
    prompt = "#Person1#: Zoe asks when the concert is. #99\nAnswer:"
    polite, rude = scorer(
        [prompt, prompt],
        [" Thank you for asking, Zoe. The concert is at six.", " The concert is at six. Go away, Zoe."],
    )
    assert polite > rude
    with pytest.raises(UsageError, match="2 prompts for 1 completions"):
        scorer([prompt, prompt], ["x"])


def test_lora_reward_model_trains_only_adapters_and_the_head(tiny_model, tmp_path):
    from peft import get_peft_model

    from genai_runtime.align.reward import build_reward_model

    model, _, peft_config = build_reward_model(_reward_config(tiny_model, tmp_path))
    peft_model = get_peft_model(model, peft_config)
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name or "score" in name for name in trainable)
    assert any("lora_" in name for name in trainable) and any("score" in name for name in trainable)


@pytest.mark.slow
def test_full_reward_training_trains_every_weight(tiny_model, tmp_path):
    from genai_runtime.align.reward import run_reward

    metrics = run_reward(_reward_config(tiny_model, tmp_path, **{"lora.enabled": False}), progress=False)
    assert metrics["trainable_parameters"] == metrics["total_parameters"]
    assert metrics["pairwise_accuracy"] > max(metrics["pairwise_accuracy_before"], 0.5)


def test_dpo_through_the_cli_raises_held_out_preference_accuracy(tiny_model, tmp_path, capsys):
    from genai_runtime.cli import main

    out = tmp_path / "dpo"
    code = main(
        ["align", "dpo", "--model", str(tiny_model), "--data", str(PAIRS), "--out", str(out), "--max-steps", "20"]
        + ["--learning-rate", "3e-3", "--lora-r", "4", "--beta", "0.1", "--set", "training.logging_steps=5"]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "dpo" and metrics["lora"] is True
    assert metrics["preference_accuracy"] > metrics["preference_accuracy_before"]
    assert metrics["preference_accuracy"] > 0.5 and metrics["reward_margin"] > 0
    assert (out / "model" / "adapter_config.json").is_file()  # the reference was the base: no copy saved
    printed = capsys.readouterr().out  # the trainer's log lines, then the summary
    assert json.loads(printed[printed.rindex("{\n") :])["preference_accuracy"] == metrics["preference_accuracy"]


@pytest.mark.slow
def test_orpo_from_trl_experimental(tiny_model, tmp_path):
    from genai_runtime.align.dpo import run_dpo

    config = load_dpo_config(
        overrides={
            "model": str(tiny_model),
            "data.train": str(PAIRS),
            "output_dir": str(tmp_path),
            "method": "orpo",
            **FAST,
        },
        environ={},
    )
    metrics = run_dpo(config, progress=False)
    assert metrics["method"] == "orpo"
    assert metrics["reward_margin"] > metrics["reward_margin_before"]


# ---- configuration and the SageMaker contract ----------------------------------------------------


@pytest.mark.parametrize(
    ("loader", "overrides", "message"),
    [
        (load_reward_config, {"bta": 0.1}, "bta: unknown key"),
        (load_reward_config, {"beta": 0.1}, "beta: unknown key"),  # beta is DPO's
        (load_dpo_config, {"beta": 0}, "beta: Input should be greater than 0"),
        (load_dpo_config, {"method": "ppo"}, "method: Input should be 'dpo' or 'orpo'"),
        (load_dpo_config, {"lora.r": 0}, "lora.r: Input should be greater than or equal to 1"),
        (load_dpo_config, {"data.validation_fraction": 1.0}, "data.validation_fraction: Input should be less than 1"),
    ],
)
def test_bad_config_names_the_key(tmp_path, loader, overrides, message):
    base = {"model": str(tmp_path), "data.train": str(PAIRS), "output_dir": str(tmp_path / "out")}
    with pytest.raises(UsageError, match=message):
        loader(overrides={**base, **overrides}, environ={})


def test_a_training_job_overrides_the_config_file(tmp_path):
    root = tmp_path / "opt-ml"
    config_dir = root / "input" / "config"
    config_dir.mkdir(parents=True)
    (config_dir / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    (config_dir / "inputdataconfig.json").write_text(json.dumps({"train": {}, "model": {}, "base": {}}))
    (config_dir / "hyperparameters.json").write_text(
        json.dumps({"beta": "0.25", "lora__r": "4", "lora__enabled": "false"})
    )
    config_file = tmp_path / "dpo.yaml"
    config_file.write_text("model: /nowhere\ndata: {train: /nowhere.jsonl}\noutput_dir: /tmp/x\nbeta: 0.1\n")
    config = load_dpo_config(config_file, environ={"GENAI_SAGEMAKER_ROOT": str(root)})
    assert config.model == root / "input" / "data" / "model"
    assert config.data.train == root / "input" / "data" / "train"
    assert config.output_dir == root / "model" and config.base == root / "input" / "data" / "base"
    assert (config.beta, config.lora.r, config.lora.enabled) == (0.25, 4, False)


def test_cli_refuses_a_missing_model_folder(tmp_path, capsys):
    from genai_runtime.cli import main

    code = main(["align", "reward", "--model", str(tmp_path), "--data", str(PAIRS), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "not a model folder" in capsys.readouterr().err


def test_reward_cli_from_a_yaml_config(tiny_model, tmp_path):
    from genai_runtime.cli import main

    config = tmp_path / "reward.yaml"
    config.write_text(
        f"model: {tiny_model}\ndata: {{train: {PAIRS}, validation_fraction: 0.25}}\noutput_dir: {tmp_path / 'rm'}\n"
        "lora: {r: 4}\ntraining: {learning_rate: 3.0e-3, logging_steps: 5}\n"
    )
    assert main(["align", "reward", "--config", str(config), "--max-steps", "12"]) == 0
    metrics = json.loads((tmp_path / "rm" / "metrics.json").read_text())
    assert {"method", "pairwise_accuracy", "pairwise_accuracy_before", "pairs"} <= set(metrics)
    assert metrics["pairs"] == 12 and metrics["global_step"] == 12  # 12 of the 48 prompts held out
    assert (tmp_path / "rm" / "model" / "config.json").is_file()  # LoRA merged: a plain model for the scorer


def test_an_adapter_only_sft_model_is_merged_into_its_base_first(tiny_model, tiny_adapters, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from genai_runtime.align.reward import start_model

    assert start_model(tiny_model) == tiny_model
    merged = start_model(tiny_adapters / "tenant-a", base=tiny_model)
    assert (merged / "config.json").is_file() and not (merged / "adapter_config.json").exists()
    before = AutoModelForCausalLM.from_pretrained(tiny_model).model.layers[0].self_attn.q_proj.weight
    after = AutoModelForCausalLM.from_pretrained(merged).model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(before, after)  # the adapter is in the weights
    with pytest.raises(UsageError, match="a LoRA adapter whose base model .* give it as base"):
        start_model(tiny_adapters / "tenant-a", base=tmp_path)


def test_a_failing_job_writes_its_reason_for_sagemaker(tmp_path, monkeypatch, capsys):
    from genai_runtime.cli import main

    root = tmp_path / "opt-ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "resourceconfig.json").write_text('{"current_host": "algo-1", "hosts": ["algo-1"]}')
    (root / "input" / "config" / "inputdataconfig.json").write_text('{"train": {}, "model": {}}')
    (root / "input" / "config" / "hyperparameters.json").write_text('{"bta": "0.2"}')
    monkeypatch.setenv("GENAI_SAGEMAKER_ROOT", str(root))
    assert main(["align", "dpo", "train"]) == 2  # SageMaker's `<entrypoint> train`
    assert "bta: unknown key" in (root / "output" / "failure").read_text()
    assert "bta: unknown key" in capsys.readouterr().err


def test_a_model_package_archive_is_unpacked_and_a_hostile_one_refused(tiny_model, tmp_path):
    import tarfile

    from genai_runtime.align.reward import start_model

    channel = tmp_path / "model"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as bundle:  # what ModelDataUrl names
        for file in Path(tiny_model).iterdir():
            bundle.add(file, arcname=file.name)
    started = start_model(channel)
    assert (started / "config.json").is_file() and started != channel

    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (tmp_path / "evil.txt").write_text("x")
    with tarfile.open(hostile / "model.tar.gz", "w:gz") as bundle:
        bundle.add(tmp_path / "evil.txt", arcname="../evil.txt")
    with pytest.raises(UsageError, match="cannot unpack the model archive"):
        start_model(hostile)
