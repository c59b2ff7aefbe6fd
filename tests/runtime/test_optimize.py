"""`genai optimize`: each operation checked by its effect on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from genai_runtime.errors import UsageError
from genai_runtime.models.io import HELD_OUT_TEXT, load_causal_lm, logits


def _genai(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genai_runtime.cli", *map(str, args)], capture_output=True, text=True)


def test_merge_equals_the_adapter_model(tiny_model, tiny_adapters, tmp_path):
    from peft import PeftModel

    from genai_runtime.optimize.merge import merge_adapter

    report = merge_adapter(tiny_model, tiny_adapters / "tenant-a", tmp_path / "merged")
    assert report.ok and report.max_logit_difference <= 1e-4
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    base, tokenizer = load_causal_lm(tiny_model)
    with_adapter = PeftModel.from_pretrained(base, tiny_adapters / "tenant-a").eval()
    merged, _ = load_causal_lm(tmp_path / "merged")
    expected, _ = logits(with_adapter, tokenizer, HELD_OUT_TEXT)
    actual, _ = logits(merged, tokenizer, HELD_OUT_TEXT)
    assert (expected - actual).abs().max() < 1e-4
    plain, _ = logits(load_causal_lm(tiny_model)[0], tokenizer, HELD_OUT_TEXT)
    assert (plain - actual).abs().max() > 1e-2  # the adapter really changed the weights


def test_prune_reaches_the_target_sparsity(tiny_model, tmp_path):
    import torch

    from genai_runtime.optimize.prune import prune_model

    report = prune_model(tiny_model, tmp_path / "pruned", sparsity=0.5)
    assert report.overall_sparsity == pytest.approx(0.5, abs=0.01)
    assert report.per_layer and all(s == pytest.approx(0.5, abs=0.02) for s in report.per_layer.values())
    reloaded, _ = load_causal_lm(tmp_path / "pruned")
    weights = [m.weight for n, m in reloaded.named_modules() if isinstance(m, torch.nn.Linear) and "lm_head" not in n]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.5, abs=0.01)
    assert json.loads((tmp_path / "pruned" / "prune_report.json").read_text())["target_sparsity"] == 0.5


def test_int8_quantization_shrinks_the_model_and_stays_close(tiny_model, tmp_path):
    from genai_runtime.inference.engine import InferenceEngine
    from genai_runtime.inference.schema import parse_request
    from genai_runtime.optimize.quantize import quantize_int8

    report = quantize_int8(tiny_model, tmp_path / "int8")
    assert report.size_ratio < 0.8
    assert report.max_logit_difference < 0.05
    assert report.perplexity_after == pytest.approx(report.perplexity_before, rel=0.01)
    engine = InferenceEngine(tmp_path / "int8")  # the quantized folder serves like any other
    try:
        assert engine.generate(parse_request({"inputs": "Hi", "parameters": {"max_new_tokens": 3}}))[0]
    finally:
        engine.close()


def test_gptq_without_gptqmodel_says_which_extra(tiny_model, tmp_path):
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("\n".join(HELD_OUT_TEXT))
    process = _genai(
        "optimize",
        "quantize",
        "--model",
        tiny_model,
        "--out",
        tmp_path / "gptq",
        "--method",
        "gptq",
        "--calibration",
        calibration,
    )
    assert process.returncode == 2
    assert "gptqmodel is not installed" in process.stderr and "genai-cdk[gptq]" in process.stderr
    process = _genai("optimize", "quantize", "--model", tiny_model, "--out", tmp_path / "g2", "--method", "gptq")
    assert process.returncode == 2 and "needs --calibration FILE" in process.stderr


def test_distillation_loss_parts():
    import torch

    from genai_runtime.optimize.distill import distillation_loss

    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    hard = torch.nn.functional.cross_entropy(student[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1))
    assert torch.allclose(distillation_loss(student, teacher, labels, 2.0, alpha=0.0), hard)
    assert distillation_loss(student, student, labels, 2.0, alpha=1.0).abs() < 1e-6  # no KL to itself
    assert distillation_loss(student, teacher, labels, 2.0, alpha=1.0) > 0


def test_distill_moves_the_student_towards_the_teacher(tiny_model, tmp_path):
    import torch

    from genai_runtime.models.tiny import TinyModelSpec, write_tiny_model
    from genai_runtime.optimize.distill import distill

    student_dir = write_tiny_model(tmp_path / "student", TinyModelSpec(seed=1, layers=1))
    dataset = tmp_path / "dialogues.jsonl"
    dataset.write_text("\n".join(json.dumps({"text": t}) for t in HELD_OUT_TEXT * 8))
    # A random model predicts nearly uniformly; sharpen the teacher so it has something to teach.
    teacher, tokenizer = load_causal_lm(tiny_model)
    with torch.no_grad():
        teacher.lm_head.weight.mul_(40.0)
    teacher.save_pretrained(tmp_path / "teacher")
    tokenizer.save_pretrained(tmp_path / "teacher")

    def kl_to_teacher(model_dir):
        student, _ = load_causal_lm(model_dir)
        s, mask = logits(student, tokenizer, HELD_OUT_TEXT)
        t, _ = logits(teacher, tokenizer, HELD_OUT_TEXT)
        kl = torch.nn.functional.kl_div(s.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction="none")
        return float((kl.sum(-1) * mask).sum() / mask.sum())

    report = distill(
        tmp_path / "teacher",
        student_dir,
        dataset,
        tmp_path / "distilled",
        alpha=0.9,
        epochs=3,
        learning_rate=3e-3,
        progress=False,
    )
    assert report.steps == 12
    assert sum(report.losses[-3:]) < sum(report.losses[:3])
    before, after = kl_to_teacher(student_dir), kl_to_teacher(tmp_path / "distilled")
    assert after < 0.7 * before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num-cores", "4", "--instance-type", "ml.inf2.xlarge"], "ml.inf2.xlarge has 2 NeuronCores; use 1..2"),
        (["--num-cores", "5", "--instance-type", "ml.inf2.48xlarge"], "must divide the 24 NeuronCores"),
        (["--instance-type", "ml.g5.2xlarge"], "a GPU instance; Neuron compiles for ml.inf2"),
        (["--instance-type", "ml.x1.big"], "--instance-type='ml.x1.big' is invalid"),
        (["--auto-cast-type", "int4"], "choose one of bf16, fp16, fp32"),
        ([], "optimum is not installed: Neuron compilation needs optimum-neuron"),
    ],
)
def test_compile_validates_before_needing_the_neuron_sdk(tiny_model, tmp_path, args, message):
    process = _genai("optimize", "compile", "--model", tiny_model, "--out", tmp_path / "neuron", *args)
    assert process.returncode == 2
    assert message in process.stderr and "Traceback" not in process.stderr


@pytest.fixture
def s3(monkeypatch):
    import boto3
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="models")
        yield client


def test_package_lays_out_uploads_and_skips_what_is_unchanged(tiny_model, tmp_path, s3):
    from genai_cdk.lmi_options import LmiOptions
    from genai_runtime.optimize import package

    folder = package.layout(
        tiny_model,
        tmp_path / "pkg",
        LmiOptions(rolling_batch="disable", max_model_len=256),
        "ml.g5.2xlarge",
        custom_handler=True,
    )
    properties = (folder / "serving.properties").read_text()
    assert "option.rolling_batch=disable" in properties and "option.entryPoint=genai_runtime" in properties
    assert not (folder / "model.py").exists()  # the custom handler replaces the engine: no formatters
    manifest = json.loads((folder / package.MANIFEST).read_text())
    assert manifest["serving.properties"] == package.sha256(folder / "serving.properties")
    assert "model.safetensors" in manifest

    first = package.upload_prefix(folder, "s3://models/tiny/v1/", client=s3)
    assert sorted(first.uploaded) == sorted(f"tiny/v1/{name}" for name in [*manifest, package.MANIFEST])
    again = package.upload_prefix(folder, "s3://models/tiny/v1/", client=s3)
    assert again.uploaded == [] and len(again.unchanged) == len(first.uploaded)
    (folder / "serving.properties").write_text(properties + "option.trust_remote_code=false\n")
    changed = package.upload_prefix(folder, "s3://models/tiny/v1", client=s3)
    assert changed.uploaded == ["tiny/v1/serving.properties"]
    head = s3.head_object(Bucket="models", Key="tiny/v1/model.safetensors")
    assert head["Metadata"]["sha256"] == manifest["model.safetensors"]

    tarball = package.upload_tarball(folder, "s3://models/tiny/v2/", client=s3)
    assert tarball.uploaded == ["tiny/v2/model.tar.gz"]
    assert package.upload_tarball(folder, "s3://models/tiny/v2/", client=s3).uploaded == []


def test_package_rejects_bad_input(tiny_model, tmp_path):
    from genai_cdk.lmi_options import LmiOptions
    from genai_runtime.optimize import package

    with pytest.raises(UsageError, match="ml.inf2.xlarge has 2 NeuronCores"):
        package.layout(tiny_model, tmp_path / "p1", LmiOptions(tensor_parallel_degree=8), "ml.inf2.xlarge")
    with pytest.raises(UsageError, match="give s3://BUCKET/PREFIX/"):
        package.parse_s3_uri("models/tiny")
    process = _genai(
        "optimize",
        "package",
        "--model",
        tiny_model,
        "--out",
        tmp_path / "p2",
        "--instance-type",
        "ml.g5.2xlarge",
        "--dtype",
        "int3",
    )
    assert process.returncode == 2 and "dtype='int3' is invalid" in process.stderr
    process = _genai(
        "optimize",
        "package",
        "--model",
        tiny_model,
        "--out",
        tmp_path / "p3",
        "--instance-type",
        "ml.g5.2xlarge",
        "--custom-handler",
    )
    assert process.returncode == 2 and "works only with rolling_batch='disable'" in process.stderr
    assert not (tmp_path / "p3").exists()


def _fake_compiled(folder, **overrides):
    from genai_runtime.optimize.compile import SETTINGS_FILE

    folder.mkdir()
    settings = {
        "batch_size": 8,
        "sequence_length": 4096,
        "num_cores": 24,
        "auto_cast_type": "fp16",
        "instance_type": "ml.inf2.48xlarge",
        **overrides,
    }
    (folder / SETTINGS_FILE).write_text(json.dumps(settings))
    (folder / "model.neff").write_bytes(b"neff")
    return folder


def test_package_puts_compiled_graphs_where_compiled_graph_path_points(tiny_model, tmp_path):
    from genai_cdk.lmi_options import LmiOptions
    from genai_runtime.optimize import package

    options = LmiOptions(
        tensor_parallel_degree=24,
        n_positions=4096,
        max_rolling_batch_size=8,
        compiled_graph_path=package.COMPILED_GRAPH_PATH,
    )
    folder = package.layout(
        tiny_model, tmp_path / "pkg", options, "ml.inf2.48xlarge", compiled_dir=_fake_compiled(tmp_path / "graphs")
    )
    assert (folder / package.COMPILED_DIR / "model.neff").read_bytes() == b"neff"
    properties = (folder / "serving.properties").read_text()
    assert f"option.compiled_graph_path={package.COMPILED_GRAPH_PATH}" in properties
    assert "option.entryPoint=djl_python.transformers_neuronx" in properties and (folder / "model.py").is_file()


@pytest.mark.parametrize(
    ("options", "graphs", "message"),
    [
        ({"compiled_graph_path": "/opt/ml/model/compiled"}, None, "nothing puts graphs there"),
        (
            {"compiled_graph_path": "/opt/ml/model/compiled", "max_rolling_batch_size": 32},
            {},
            "max_rolling_batch_size=32 but the graphs were compiled for 8",
        ),
        ({"compiled_graph_path": "/opt/ml/model/compiled", "n_positions": 2048}, {}, "n_positions=2048"),
        ({"compiled_graph_path": "/opt/ml/model/compiled"}, {"num_cores": 12}, "tensor_parallel_degree=24"),
        ({"compiled_graph_path": "/elsewhere"}, {}, "set compiled_graph_path to it"),
    ],
)
def test_package_refuses_graphs_that_do_not_match_the_endpoint(tiny_model, tmp_path, options, graphs, message):
    from genai_cdk.lmi_options import LmiOptions
    from genai_runtime.optimize import package

    base = {"tensor_parallel_degree": 24, "n_positions": 4096, "max_rolling_batch_size": 8}
    compiled = _fake_compiled(tmp_path / "graphs", **graphs) if graphs is not None else None
    with pytest.raises(UsageError, match=message):
        package.layout(
            tiny_model, tmp_path / "pkg", LmiOptions(**{**base, **options}), "ml.inf2.48xlarge", compiled_dir=compiled
        )
    assert not (tmp_path / "pkg").exists()


def test_compile_defaults_come_from_the_endpoint_options():
    from genai_cdk.lmi_options import LmiOptions
    from genai_runtime.optimize.compile import CompileSettings

    settings = CompileSettings.for_endpoint("ml.inf2.48xlarge")
    assert (settings.batch_size, settings.sequence_length, settings.num_cores) == (
        LmiOptions().max_rolling_batch_size,
        4096,
        24,
    )
    assert settings.mismatches(LmiOptions(n_positions=4096), "ml.inf2.48xlarge") == []
