"""`genai train`: instruction data, the four fine-tuning modes on a tiny model, SageMaker contract,
FSDP semantics, resume after a kill, ROUGE evaluation and pipeline submission."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genai_runtime.errors import UsageError
from genai_runtime.train.config import load_config
from genai_runtime.train.data import mix, read_rows, split, to_instructions
from genai_runtime.train.distributed import fsdp_arguments
from genai_runtime.train.templates import SAMSUM, template_pack


def _config(tiny_model, dialogues, out, **overrides):
    return load_config(
        overrides={
            "model": str(tiny_model),
            "data.train": str(dialogues),
            "output_dir": str(out),
            "training.max_steps": 16,
            "training.logging_steps": 4,
            "training.save_steps": 8,
            "training.learning_rate": 5e-3,
            "lora.r": 4,
            **overrides,
        }
    )


# ---- data --------------------------------------------------------------------------------------


def test_the_seven_flan_samsum_templates_render():
    assert len(SAMSUM) == 7
    rendered = SAMSUM[0].render({"dialogue": "A: hi\nB: hello", "summary": "They greet."})
    assert rendered == {"prompt": "A: hi\nB: hello\n\nBriefly summarize that dialogue.", "completion": " They greet."}
    with pytest.raises(UsageError, match=r"template needs columns \['summary'\]"):
        SAMSUM[1].render({"dialogue": "x"})
    with pytest.raises(UsageError, match="data.template='alpaca': choose one of samsum"):
        template_pack("alpaca")


def test_rows_become_instructions_over_every_phrasing(dialogues):
    rows = read_rows(dialogues)
    examples = to_instructions(rows, "samsum", "dialogue", "summary")
    assert len(examples) == 40
    instructions = {e["prompt"].replace(r["dialogue"], "{dialogue}") for e, r in zip(examples, rows, strict=True)}
    assert instructions == {t.prompt for t in SAMSUM}
    with pytest.raises(UsageError, match=r"columns \['text'\] not in the dataset"):
        to_instructions(rows, "samsum", "text", "summary")


def test_csv_parquet_and_a_channel_folder(dialogues, tmp_path):
    import pandas as pd

    frame = pd.read_json(dialogues, lines=True)
    frame.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "channel").mkdir()
    frame.to_parquet(tmp_path / "channel" / "d.parquet")
    assert read_rows(tmp_path / "d.csv") == read_rows(dialogues)
    assert read_rows(tmp_path / "channel") == read_rows(dialogues)
    with pytest.raises(UsageError, match="use .jsonl, .csv or .parquet"):
        (tmp_path / "d.txt").write_text("x")
        read_rows(tmp_path / "d.txt")


def test_multitask_mix_and_splits():
    task = [{"prompt": f"t{i}", "completion": "x"} for i in range(95)]
    general = [{"prompt": f"g{i}", "completion": "y"} for i in range(10)]
    mixed = mix(task, general, 0.05)
    assert len(mixed) == 100 and sum(e["prompt"].startswith("g") for e in mixed) == 5
    parts = split(mixed, 0.1, 0.2, seed=1)
    assert [len(parts[k]) for k in ("train", "validation", "test")] == [70, 10, 20]
    assert split(mixed, 0.1, 0.2, seed=1) == parts
    with pytest.raises(UsageError, match="mix_ratio=1.0"):
        mix(task, general, 1.0)


# ---- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"modee": "lora"}, "modee: unknown key"),
        ({"mode": "adapter"}, "mode: Input should be 'full', 'lora', 'qlora' or 'prompt_tuning'"),
        ({"lora.r": 0}, "lora.r: Input should be greater than or equal to 1"),
        ({"training.learning_rate": 2}, "training.learning_rate"),
        ({"data.mix_ratio": 0.05}, "data.mix_ratio > 0 needs data.general"),
        ({"mode": "full", "merge_adapter": True}, "merge_adapter applies to lora/qlora"),
        ({"data.test_fraction": 0.6, "data.validation_fraction": 0.5}, "must stay below 1"),
        ({"training.precision": "fp8"}, "training.precision: Input should be"),
    ],
)
def test_bad_config_names_the_key(tiny_model, dialogues, tmp_path, overrides, message):
    with pytest.raises(UsageError, match=message):
        _config(tiny_model, dialogues, tmp_path, **overrides)


def test_sagemaker_contract_overrides_the_file(tiny_model, dialogues, tmp_path):
    config_file = tmp_path / "sft.yaml"
    config_file.write_text(f"model: {tiny_model}\ndata: {{train: /nowhere.jsonl}}\noutput_dir: /tmp/x\n")
    environ = {
        "SM_CHANNEL_TRAIN": str(dialogues.parent),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_HPS": json.dumps({"mode": "qlora", "training__max_steps": "7", "lora__r": 8}),
    }
    config = load_config(config_file, environ=environ)
    assert config.data.train == dialogues.parent and config.output_dir == tmp_path / "model"
    assert (config.mode, config.training.max_steps, config.lora.r) == ("qlora", 7, 8)


def test_fsdp_sharding_degree_semantics():
    assert fsdp_arguments(1, 8) == {}
    assert fsdp_arguments(8, 8)["fsdp"] == "full_shard auto_wrap"
    assert fsdp_arguments(4, 8)["fsdp"] == "hybrid_shard auto_wrap"
    with pytest.raises(UsageError, match="sharding_degree=16 exceeds the 8 device"):
        fsdp_arguments(16, 8)
    with pytest.raises(UsageError, match="must divide the 8 devices"):
        fsdp_arguments(3, 8)


def test_precision_defaults_to_fp32_on_cpu_and_refuses_bf16_without_a_gpu():
    from genai_runtime.train.sft import precision_arguments

    assert precision_arguments("auto") == {"bf16": False, "fp16": False}
    with pytest.raises(UsageError, match="training.precision=bf16: needs a GPU"):
        precision_arguments("bf16")


def test_lora_trainable_parameters_follow_the_formula():
    import torch
    from peft import LoraConfig, get_peft_model

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(64, 512, bias=False)  # the book's 512 x 64 weight

        def forward(self, x):
            return self.proj(x)

    model = get_peft_model(Block(), LoraConfig(r=4, target_modules=["proj"]))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert (trainable, frozen) == (2_304, 32_768)  # r * (512 + 64) of 512 * 64


# ---- training ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["full", "lora", "qlora", "prompt_tuning"])
def test_loss_goes_down_in_every_mode(tiny_model, dialogues, tmp_path, mode):
    from genai_runtime.train.sft import run_sft

    result = run_sft(_config(tiny_model, dialogues, tmp_path / mode, mode=mode), progress=False)
    losses = [loss for _, loss in result.losses]
    assert result.global_step == 16 and len(losses) == 4
    assert losses[-1] < losses[0]
    if mode == "full":
        assert result.trainable_parameters == result.total_parameters
    else:
        assert 0 < result.trainable_parameters < result.total_parameters / 10
    saved = Path(result.model_dir)
    assert (saved / ("config.json" if mode == "full" else "adapter_config.json")).is_file()


def test_lora_adapter_saved_alone_and_merged_on_request(tiny_model, dialogues, tmp_path):
    from genai_runtime.train.sft import run_sft

    result = run_sft(
        _config(tiny_model, dialogues, tmp_path, merge_adapter=True, **{"training.max_steps": 4}), progress=False
    )
    assert (Path(result.model_dir) / "adapter_model.safetensors").is_file()
    assert (Path(result.merged_dir) / "model.safetensors").is_file()
    assert not (Path(result.merged_dir) / "adapter_config.json").exists()


def test_a_killed_job_resumes_from_its_last_checkpoint_and_ends_at_the_same_step(tiny_model, dialogues, tmp_path):
    config = tmp_path / "sft.json"
    config.write_text(
        json.dumps(
            {
                "model": str(tiny_model),
                "data": {"train": str(dialogues)},
                "output_dir": str(tmp_path / "out"),
                "mode": "lora",
                "evaluate": False,
                "training": {"max_steps": 80, "save_steps": 10, "logging_steps": 10, "save_total_limit": 2},
            }
        )
    )
    command = [sys.executable, "-m", "genai_runtime.cli", "train", "sft", "--config", str(config), "--no-eval"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "out" / "checkpoints"
    deadline = time.monotonic() + 120
    while not list(checkpoints.glob("checkpoint-20/trainer_state.json")):
        assert first.poll() is None, "training finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # like a spot interruption: no chance to clean up
    first.wait(30)
    assert not (tmp_path / "out" / "train_metrics.json").exists()

    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    metrics = json.loads((tmp_path / "out" / "train_metrics.json").read_text())
    assert metrics["global_step"] == 80
    assert metrics["resumed_from"] is not None and int(metrics["resumed_from"].rsplit("-", 1)[1]) >= 20


def test_rouge_before_and_after_with_a_plot(tiny_model, dialogues, tmp_path):
    from genai_runtime.train.evaluate import evaluate_before_after, rouge
    from genai_runtime.train.sft import run_sft

    assert rouge(["the cat sat"], ["the cat sat"]) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert rouge(["dog"], ["the cat sat"])["rouge1"] == 0.0
    config = _config(tiny_model, dialogues, tmp_path, mode="full", **{"training.max_steps": 30})
    result = run_sft(config, progress=False)
    report = evaluate_before_after(
        config.model, Path(result.model_dir), tmp_path / "test.jsonl", tmp_path, result.losses
    )
    assert report["examples"] == 4 and set(report["before"]) == {"rouge1", "rouge2", "rougeL"}
    assert report["after"]["rouge1"] > report["before"]["rouge1"]  # it learned the summary pattern
    assert json.loads((tmp_path / "eval.json").read_text()) == report
    assert (tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_reads_a_training_jobs_model_tarball(tiny_model, dialogues, tmp_path):
    import tarfile

    from genai_runtime.train.sft import run_sft

    out = tmp_path / "sm_model_dir"
    run_sft(_config(tiny_model, dialogues, out, **{"training.max_steps": 4}), progress=False)
    tarball = tmp_path / "output" / "model.tar.gz"
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as archive:  # what SageMaker uploads from SM_MODEL_DIR
        for path in out.iterdir():
            if path.name != "checkpoints":
                archive.add(path, arcname=path.name)
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "genai_runtime.cli",
            "train",
            "evaluate",
            "--base",
            str(tiny_model),
            "--trained",
            str(tarball.parent),
            "--out",
            str(tmp_path / "eval"),
        ],
        capture_output=True,
        text=True,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    lines = dict(line.split("=", 1) for line in process.stdout.splitlines() if line.startswith("rouge"))
    assert set(lines) == {"rouge1", "rouge2", "rougeL"} and all(0 <= float(v) <= 1 for v in lines.values())
    assert (tmp_path / "eval" / "eval.json").is_file()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "genai_runtime.cli",
            "train",
            "evaluate",
            "--base",
            str(tiny_model),
            "--trained",
            str(tmp_path / "eval"),
            "--out",
            str(tmp_path / "e2"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "expected an sft output with model/ and test.jsonl" in bad.stderr


def test_neuron_trainer_outside_the_neuron_image_says_what_is_missing(tiny_model, dialogues, tmp_path):
    from genai_runtime.train.sft import run_sft

    with pytest.raises(UsageError, match=r"optimum is not installed: the Trainium path .*genai-cdk\[neuron\]"):
        run_sft(_config(tiny_model, dialogues, tmp_path, trainer="neuron"), progress=False)


# ---- pipeline submission -------------------------------------------------------------------------


def test_submit_starts_the_deployed_pipeline(monkeypatch):
    import boto3
    from moto import mock_aws

    from genai_runtime.train.submit import submit

    credentials = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        sfn = boto3.client("stepfunctions")
        iam = boto3.client("iam")
        role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        arn = sfn.create_state_machine(
            name="sft",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn=role,
        )["stateMachineArn"]
        cfn = boto3.client("cloudformation")
        cfn.create_stack(
            StackName="genai-dev-training",
            TemplateBody=json.dumps(
                {
                    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {"FineTuningPipelineArn": {"Value": arn}},
                }
            ),
        )
        started = submit("dev", "s3://my-data/samsum/train.jsonl", hyperparameters={"lora__r": 16})
        execution = sfn.describe_execution(executionArn=started["executionArn"])
        assert execution["stateMachineArn"] == arn
        assert json.loads(execution["input"]) == {
            "dataset": "s3://my-data/samsum/train.jsonl",
            "hyperparameters": {"lora__r": "16"},  # strings, as CreateTrainingJob takes them
        }
        with pytest.raises(UsageError, match=r"--set: lora.rr: unknown key"):
            submit("dev", "s3://my-data/x.jsonl", hyperparameters={"lora.rr": 4})
        with pytest.raises(UsageError, match="stack genai-prod-training not found"):
            submit("prod", "s3://my-data/x.jsonl")
        with pytest.raises(UsageError, match="give the S3 URI"):
            submit("dev", "/local/file.jsonl")


def test_launch_builds_torchrun_from_the_sagemaker_environment():
    from genai_runtime.train.launch import torchrun_command

    environ = {"SM_HOSTS": json.dumps(["algo-2", "algo-1"]), "SM_CURRENT_HOST": "algo-2", "SM_NUM_NEURONS": "32"}
    command = torchrun_command(["--set", "mode=lora"], environ)
    assert command[1:3] == ["-m", "torch.distributed.run"]
    assert command[3:8] == [
        "--nnodes=2",
        "--node_rank=1",
        "--nproc_per_node=32",
        "--master_addr=algo-1",
        "--master_port=29500",
    ]
    assert command[-6:] == ["-m", "genai_runtime.cli", "train", "sft", "--set", "mode=lora"]
    assert torchrun_command([], {"SM_NUM_GPUS": "8"})[3:6] == ["--nnodes=1", "--node_rank=0", "--nproc_per_node=8"]
    assert torchrun_command([], {})[5] == "--nproc_per_node=1"
    with pytest.raises(UsageError, match="SM_CURRENT_HOST='algo-9' is not in SM_HOSTS"):
        torchrun_command([], {"SM_HOSTS": json.dumps(["algo-1"]), "SM_CURRENT_HOST": "algo-9"})


def test_launch_trains_under_torchrun(tiny_model, dialogues, tmp_path):
    config = tmp_path / "sft.json"
    config.write_text(
        json.dumps(
            {
                "model": str(tiny_model),
                "data": {"train": str(dialogues)},
                "output_dir": str(tmp_path / "out"),
                "evaluate": False,
                "training": {"max_steps": 3, "save_steps": 100},
            }
        )
    )
    process = subprocess.run(
        [sys.executable, "-m", "genai_runtime.cli", "train", "launch", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert "torch.distributed.run --nnodes=1 --node_rank=0 --nproc_per_node=1" in process.stdout
    assert json.loads((tmp_path / "out" / "train_metrics.json").read_text())["global_step"] == 3


def test_lean_trainer_loss_equals_trls_completion_only_loss(tiny_model, tmp_path):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from genai_runtime.train.sft import lean_sft_trainer

    rows = [
        {"prompt": f"Summarize: #Person1# asks about item {n}. ", "completion": f"They discuss item {n}."}
        for n in range(8)
    ]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    losses = []
    for trainer_class in (SFTTrainer, lean_sft_trainer()):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
        args = SFTConfig(
            output_dir=str(tmp_path / trainer_class.__name__),
            per_device_train_batch_size=8,
            completion_only_loss=True,
            report_to="none",
            use_cpu=True,
            bf16=False,
            max_length=64,
        )
        trainer = trainer_class(
            model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
        )
        batch = next(iter(trainer.get_train_dataloader()))
        completion_tokens = (batch["labels"] != -100).sum()
        assert 0 < completion_tokens < batch["attention_mask"].sum()  # the prompt is masked out
        trainer.model.eval()
        with torch.no_grad():
            losses.append(float(trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=completion_tokens)))
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


@pytest.mark.slow
def test_launch_runs_ddp_over_two_processes(tiny_model, dialogues, tmp_path):
    """Two ranks on CPU (gloo): both train in step, only rank 0 writes the outputs."""
    config = tmp_path / "sft.json"
    config.write_text(
        json.dumps(
            {
                "model": str(tiny_model),
                "data": {"train": str(dialogues)},
                "output_dir": str(tmp_path / "out"),
                "evaluate": False,
                "training": {"max_steps": 4, "save_steps": 100, "batch_size": 2},
            }
        )
    )
    environ = {**os.environ, "SM_NUM_GPUS": "2", "MASTER_PORT": "29517"}
    process = subprocess.run(
        [sys.executable, "-m", "genai_runtime.cli", "train", "launch", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
        env=environ,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert "--nproc_per_node=2" in process.stdout
    metrics = json.loads((tmp_path / "out" / "train_metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["global_step"] == 4
    assert (tmp_path / "out" / "model" / "adapter_config.json").is_file()
