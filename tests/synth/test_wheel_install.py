"""The construct library as a user installs it: the wheel in a fresh venv, no repository on the path.

The Lambda handlers and the Lambda image's recipe ship in the wheel; every construct synthesizes from
the installed files, and a prebuilt image runs each function's own handler, never the image's CMD.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match, Template

from tests.conftest import ROOT

ENV = Environment(account="123456789012", region="us-east-1")
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def _lambda_constructs(stack: Stack, vpc: ec2.IVpc, code) -> None:
    from genai_cdk import (
        AgentApi,
        BedrockAgent,
        ClaimsActionGroup,
        EmbeddingModel,
        IngestionPipeline,
        RagApi,
        TextGenerator,
        VectorStore,
    )

    store = VectorStore(stack, "Store", vpc=vpc, index_function_code=code)
    minilm = EmbeddingModel.sagemaker("minilm", 384)
    IngestionPipeline(stack, "Ingest", vector_store=store, vpc=vpc, embeddings=minilm, code=code)
    RagApi(
        stack, "Rag", vector_store=store, vpc=vpc, embeddings=minilm, generator=TextGenerator.bedrock(HAIKU), code=code
    )
    claims = ClaimsActionGroup(stack, "Claims", vpc=vpc, code=code)
    agent = BedrockAgent(
        stack,
        "Agent",
        foundation_model=HAIKU,
        instruction="You are an insurance claims assistant: list open claims and send renewal reminders.",
        action_groups=[claims.action_group],
    )
    AgentApi(stack, "AgentApi", agent=agent, vpc=vpc, code=code)


def test_a_prebuilt_image_runs_each_functions_own_handler():
    from genai_cdk.lambda_image import HANDLERS

    stack = Stack(App(), "Prebuilt", env=ENV)
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=["us-east-1a", "us-east-1b"], nat_gateways=1)
    repository = ecr.Repository.from_repository_name(stack, "Images", "genai-lambdas")
    _lambda_constructs(stack, vpc, lambda_.DockerImageCode.from_ecr(repository, tag_or_digest="v1"))
    functions = {
        logical_id: r["Properties"]
        for logical_id, r in Template.from_stack(stack).find_resources("AWS::Lambda::Function").items()
        if "ImageUri" in r["Properties"]["Code"]
    }
    commands = {logical_id: p.get("ImageConfig", {}).get("Command") for logical_id, p in functions.items()}
    assert sorted(c[0] for c in commands.values()) == sorted(HANDLERS.values()), commands
    assert all("genai-lambdas:v1" in json.dumps(p["Code"]) for p in functions.values())


def test_a_command_given_with_the_code_wins_with_a_warning():
    from genai_cdk import ClaimsActionGroup

    stack = Stack(App(), "Own", env=ENV)
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=["us-east-1a", "us-east-1b"], nat_gateways=1)
    repository = ecr.Repository.from_repository_name(stack, "Images", "genai-lambdas")
    code = lambda_.DockerImageCode.from_ecr(repository, cmd=["lambdas.rag_query.handler"], entrypoint=["/x"])
    claims = ClaimsActionGroup(stack, "Claims", vpc=vpc, code=code)
    Template.from_stack(stack).has_resource_properties(
        "AWS::Lambda::Function", {"ImageConfig": {"Command": ["lambdas.rag_query.handler"], "EntryPoint": ["/x"]}}
    )
    Annotations.from_stack(stack).has_warning(
        f"/{claims.function.node.path}", Match.string_like_regexp("not this function's handler")
    )


def test_a_foreign_lambdas_package_is_refused_naming_the_fix(tmp_path, monkeypatch):
    from genai_cdk import lambda_image

    (tmp_path / "lambdas").mkdir()
    (tmp_path / "lambdas" / "__init__.py").write_text("")  # e.g. another distribution's `lambdas`
    monkeypatch.setattr(lambda_image.importlib.util, "find_spec", lambda name: _spec(tmp_path / name))
    with pytest.raises(ValueError, match=r"lacks rag_ingest.py.*reinstall genai-cdk.*DockerImageCode.from_ecr"):
        lambda_image.package_folder("lambdas")


def _spec(folder: Path):
    from importlib.machinery import ModuleSpec

    spec = ModuleSpec(folder.name, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    return spec


# ---- the wheel in a fresh venv

SYNTH_EVERY_CONSTRUCT = r"""
import json, sys
from pathlib import Path

import genai_cdk, genai_contracts, genai_runtime, lambdas
from aws_cdk import App, Environment, Stack, aws_ec2 as ec2, aws_s3 as s3
from genai_cdk import (
    AgentApi, BedrockAgent, BedrockGovernance, ClaimsActionGroup, EmbeddingModel, FineTuningPipeline, InstanceGroup,
    IngestionPipeline, KnowledgeBase, LmiEndpoint, ModelArtifact, QualityGate, RagApi, ServerlessDeployment,
    TextGenerator, TrainingJobSettings, TrainiumCluster, VectorStore,
)
from genai_cdk.lambda_image import HANDLERS, build_context, package_folder
from genai_contracts import lmi_engine

ENV = Environment(account="123456789012", region="us-east-1")
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
MINILM = EmbeddingModel.sagemaker("minilm", 384)
app = App(outdir=sys.argv[1])


def stack(name):
    s = Stack(app, name, env=ENV)
    return s, ec2.Vpc(s, "Vpc", availability_zones=["us-east-1a", "us-east-1b"], nat_gateways=1)


s, vpc = stack("Llm")
models = s3.Bucket.from_bucket_name(s, "Models", "team-models")
LmiEndpoint(s, "Llm", model=ModelArtifact.from_s3_prefix(models, "mistral-7b/"))

s, vpc = stack("Rag")
domain = VectorStore(s, "Domain", vpc=vpc)
IngestionPipeline(s, "Ingest", vector_store=domain, vpc=vpc, embeddings=MINILM)
RagApi(s, "Rag", vector_store=domain, vpc=vpc, embeddings=MINILM, generator=TextGenerator.bedrock(HAIKU))

s, vpc = stack("Agents")
serverless = VectorStore(s, "Serverless", vpc=vpc, deployment=ServerlessDeployment(), dimension=1024)
kb = KnowledgeBase(s, "Kb", vector_store=serverless, documents=s3.Bucket(s, "Docs"))
claims = ClaimsActionGroup(s, "Claims", vpc=vpc)
agent = BedrockAgent(
    s, "Agent", foundation_model=HAIKU,
    instruction="You are an insurance claims assistant: list open claims and send renewal reminders.",
    action_groups=[claims.action_group], knowledge_bases=[kb.attachment],
)
AgentApi(s, "AgentApi", agent=agent, vpc=vpc)
BedrockGovernance(s, "Governance", vpc=vpc, model_ids=[HAIKU])

s, vpc = stack("Training")
data = s3.Bucket.from_bucket_name(s, "Data", "my-data")
FineTuningPipeline(
    s, "Sft", training_image="111122223333.dkr.ecr.us-east-1.amazonaws.com/genai-train:1.0",
    base_model_bucket=s3.Bucket.from_bucket_name(s, "Models", "my-models"), base_model_prefix="llama2-7b/",
    data_bucket=data, hyperparameters={"mode": "lora"}, quality_gate=QualityGate("rougeL", 0.25),
    training=TrainingJobSettings("ml.trn1.32xlarge", 2),
)
TrainiumCluster(
    s, "Cluster", vpc=vpc, data_bucket=data, data_prefix="samsum", availability_zone="us-east-1b",
    workers=[InstanceGroup("trn1", instance_count=4)],
)

assembly = app.synth()
print(json.dumps({
    "files": {m.__name__: m.__file__ for m in (genai_cdk, genai_contracts, genai_runtime, lambdas)},
    "sys_path": sys.path,
    "image_packages": {name: str(package_folder(name)) for name in ("genai_contracts", "genai_runtime", "lambdas")},
    "build_context": str(build_context()),
    "handlers": sorted(HANDLERS.values()),
    "vllm_engine_args": len(lmi_engine.vllm_engine_args()),  # package data of genai_contracts
    "stacks": {st.stack_name: st.template_full_path for st in assembly.stacks},
}))
"""


def _run(*argv, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.mark.slow
def test_the_wheel_alone_synthesizes_every_construct_and_stages_the_lambda_image_from_its_files(tmp_path):
    # 1. The wheel, built from a copy of what it packages (no build/ or egg-info in the checkout).
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("constructs", "runtime", "lambdas"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    python = sys.executable
    _run(
        python,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path / "dist"),
        str(source),
    )
    (wheel,) = (tmp_path / "dist").glob("genai_cdk-*.whl")

    # 2. A fresh venv with only the wheel; its dependencies come from this venv's site-packages by a .pth
    #    line (a plain path: the editable install's own .pth there is not processed).
    venv = tmp_path / "venv"
    _run(python, "-m", "venv", "--without-pip", str(venv))
    fresh = venv / "bin" / "python"
    _run(python, "-m", "pip", "--python", str(fresh), "install", "-q", "--no-deps", "--no-index", str(wheel))
    fresh_site = Path(
        _run(str(fresh), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    )
    (fresh_site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    # 3. Every construct in one App, run from outside the repository with nothing of it on the path.
    work, outdir, temp = tmp_path / "work", tmp_path / "cdk.out", tmp_path / "tmp"
    work.mkdir()
    temp.mkdir()
    (work / "synth_every_construct.py").write_text(SYNTH_EVERY_CONSTRUCT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(TMPDIR=str(temp), CDK_VALIDATION="false", JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1")
    out = _run(str(fresh), "synth_every_construct.py", str(outdir), cwd=work, env=env).stdout
    report = json.loads(out.strip().splitlines()[-1])

    # The packages, and the image's build context, are the installed ones.
    for name, file in report["files"].items():
        assert Path(file).is_relative_to(fresh_site), f"{name} imported from {file}"
    assert not [p for p in report["sys_path"] if p and Path(p).resolve().is_relative_to(ROOT / "constructs")]
    assert not [p for p in report["sys_path"] if p and Path(p).resolve() in (ROOT, ROOT / "runtime")]
    for name, folder in report["image_packages"].items():
        assert Path(folder) == fresh_site / name
    context = Path(report["build_context"])
    assert context.is_relative_to(temp)
    expected = {"Dockerfile", "requirements.txt"} | {
        f"{n}/{f}" for n in ("genai_contracts", "genai_runtime", "lambdas") for f in _files(fresh_site / n)
    }
    assert set(_files(context)) == expected

    # Every stack synthesized; the Lambda functions run one staged image asset, a copy of that context.
    assert set(report["stacks"]) == {"Llm", "Rag", "Agents", "Training"}
    assert report["vllm_engine_args"] > 100
    commands, images = [], set()
    for stack_name in ("Rag", "Agents"):
        template = json.loads(Path(report["stacks"][stack_name]).read_text())
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::Lambda::Function" and "ImageUri" in resource["Properties"]["Code"]:
                commands += resource["Properties"]["ImageConfig"]["Command"]
        assets = json.loads((outdir / f"{stack_name}.assets.json").read_text())
        images |= {a["source"]["directory"] for a in assets.get("dockerImages", {}).values()}
    assert sorted(commands) == report["handlers"]  # one function per handler, none on the image's CMD
    (image,) = images
    assert _files(outdir / image) == _files(context)
    assert (outdir / image / "lambdas" / "rag_query.py").read_bytes() == (
        fresh_site / "lambdas" / "rag_query.py"
    ).read_bytes()
