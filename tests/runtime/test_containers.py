"""Dockerfiles cannot be built here (no Docker engine): check what they copy exists and that
the module the image runs is importable and answers (see test_lmi_handler)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCKERFILES = sorted((ROOT / "containers").glob("*/Dockerfile*"))
LAMBDA_IMAGE = ROOT / "constructs" / "genai_cdk" / "assets" / "lambda_image"


def _copies(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"^COPY\s+(?!--from)(.+)$", line.strip())
        if match:
            sources += match.group(1).split()[:-1]
    return sources


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_copied_path_exists(dockerfile):
    sources = _copies(dockerfile)
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile.parent.name}/Dockerfile copies missing {source}"


def test_the_lambda_image_copies_what_its_generated_build_context_holds(tmp_path):
    from genai_cdk.lambda_image import HANDLERS, write_build_context

    context = write_build_context(tmp_path / "context")
    sources = _copies(context / "Dockerfile")
    assert sources == ["requirements.txt", "genai_contracts", "genai_runtime", "lambdas"]
    for source in sources:
        assert (context / source).exists(), f"the Lambda build context lacks {source}"
    for handler in HANDLERS.values():
        module = handler.rsplit(".", 1)[0]
        assert (context / f"{module.replace('.', '/')}.py").is_file(), handler
    assert not list(context.rglob("__pycache__"))


def test_inference_image_entry_point_is_importable():
    text = (ROOT / "containers" / "inference" / "Dockerfile").read_text()
    assert "genai_runtime.inference.lmi_handler" in text
    module = importlib.import_module("genai_runtime.inference.lmi_handler")
    assert callable(module.handle)
    from genai_runtime.inference.serving_properties import HANDLER_ENTRY_POINT

    assert HANDLER_ENTRY_POINT == module.__name__


@pytest.mark.parametrize("name", ["Dockerfile.gpu", "Dockerfile.neuron"])
def test_training_images_launch_genai_train_sft(name):
    from genai_runtime.cli import build_parser

    text = (ROOT / "containers" / "training" / name).read_text()
    entry = re.search(r"^ENTRYPOINT \[(.+)\]$", text, re.MULTILINE).group(1)
    argv = [part.strip().strip('"') for part in entry.split(",")]
    assert argv[:3] == ["genai", "train", "launch"]
    parsed = build_parser().parse_args([*argv[1:], "train"])  # SageMaker appends "train"
    assert parsed.command == "launch" and parsed.sagemaker_mode == "train"
    assert "runtime/genai_runtime" in text


def test_lambda_image_pins_equal_the_project_constraints():
    def pins(path: Path) -> dict[str, str]:
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        return {n.lower().replace("_", "-"): v for n, _, v in (line.partition("==") for line in lines if "==" in line)}

    image = pins(LAMBDA_IMAGE / "requirements.txt")
    project = pins(ROOT / "requirements" / "constraints.txt")
    assert {"aws-lambda-powertools", "langchain-core", "opensearch-py", "pypdf"} <= set(image)
    assert {name: project.get(name) for name in image} == image


def test_lambda_handlers_import_without_torch_or_local_models():
    import subprocess
    import sys

    code = (
        "import sys, lambdas.rag_ingest, lambdas.rag_query, lambdas.opensearch_index, lambdas.claims_action_group, "
        "lambdas.agent_api\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'faiss') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "", "PYTHONPATH": f"{ROOT}:{ROOT / 'runtime'}", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert result.stdout.strip() == "[]"
    text = (LAMBDA_IMAGE / "Dockerfile").read_text()
    assert "public.ecr.aws/lambda/python" in text


def test_inference_image_builds_on_the_pinned_lmi_tag_and_installs_no_pins_over_it():
    from genai_cdk.lmi_image import PINNED_TAGS

    text = (ROOT / "containers" / "inference" / "Dockerfile").read_text()
    assert f"djl-inference:{PINNED_TAGS['lmi']}" in text
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs and all("--no-deps" in line and " -c " not in line for line in installs)
