"""Dockerfiles cannot be built here (no Docker engine): check what they copy exists and that
the module the image runs is importable and answers (see test_lmi_handler)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCKERFILES = sorted((ROOT / "containers").glob("*/Dockerfile*"))


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
    entry = re.search(r'^ENTRYPOINT \[(.+)\]$', text, re.MULTILINE).group(1)
    argv = [part.strip().strip('"') for part in entry.split(",")]
    assert argv[:3] == ["genai", "train", "launch"]
    parsed = build_parser().parse_args([*argv[1:], "train"])  # SageMaker appends "train"
    assert parsed.command == "launch" and parsed.sagemaker_mode == "train"
    assert "runtime/genai_runtime" in text
