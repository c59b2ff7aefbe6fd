"""4-bit GPTQ for real, in the separate environment `make setup-gptq` builds (gptqmodel conflicts
with the main stack). `make test` always builds it and points GENAI_GPTQ_PYTHON at it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from genai_runtime.models.io import HELD_OUT_TEXT

GPTQ_PYTHON = os.environ.get("GENAI_GPTQ_PYTHON")
if GPTQ_PYTHON:
    GPTQ_PYTHON = os.path.abspath(GPTQ_PYTHON)  # the subprocess runs elsewhere; abspath keeps the venv's symlink


@pytest.mark.skipif(
    not GPTQ_PYTHON or not Path(GPTQ_PYTHON).exists(),
    reason="needs the GPTQ environment: run `make test` (it runs `make setup-gptq`)",
)
def test_gptq_4bit_shrinks_the_model_and_keeps_its_outputs_close(tiny_model, tmp_path):
    calibration = tmp_path / "calibration.jsonl"
    calibration.write_text("".join(json.dumps({"text": t}) + "\n" for t in HELD_OUT_TEXT * 2))
    process = subprocess.run(
        [
            GPTQ_PYTHON,
            "-m",
            "genai_runtime.cli",
            "optimize",
            "quantize",
            "--method",
            "gptq",
            "--model",
            str(tiny_model),
            "--out",
            str(tmp_path / "gptq"),
            "--calibration",
            str(calibration),
            "--bits",
            "4",
            "--sequence-length",
            "128",
            "--group-size",
            "32",
        ],
        cwd=tmp_path,  # gptqmodel writes its per-run logs to ./logs: keep them out of the repository
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    report = json.loads((tmp_path / "gptq" / "quantize_report.json").read_text())
    assert report["method"] == "gptq-4bit"
    assert report["bytes_after"] < 0.5 * report["bytes_before"]
    assert report["max_logit_difference"] < 0.25
    assert report["perplexity_after"] == pytest.approx(report["perplexity_before"], rel=0.05)
