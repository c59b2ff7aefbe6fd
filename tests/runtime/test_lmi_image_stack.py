"""The custom handler (``option.entryPoint=genai_runtime.inference.lmi_handler``) on the libraries the
pinned LMI image carries, not ours: djl-serving 0.36.0-lmi27-dlc serving/docker/lmi-container-requirements.txt
pins ``peft==0.19.1`` and ``transformers >= 4.56.0, <= 5.9.0`` (pip takes 5.9.0; it needs tokenizers <= 0.23.0).
They are installed beside our venv's torch into a folder of their own and put first on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

IMAGE_STACK = ("transformers==5.9.0", "peft==0.19.1", "tokenizers==0.22.2")
ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / ".lmi-image-packages"

SCRIPT = """
import json, sys, tempfile, pathlib
import peft, transformers
assert (transformers.__version__, peft.__version__) == ("5.9.0", "0.19.1"), (transformers.__version__, peft.__version__)
from genai_runtime.models.tiny import write_tiny_model
from genai_runtime.inference import lmi_handler
model = write_tiny_model(pathlib.Path(tempfile.mkdtemp()) / "model")
class Input:
    def __init__(self, body): self.body = body
    def get_properties(self): return {"model_dir": str(model)}
    def is_empty(self): return self.body is None
    def get_as_bytes(self): return self.body
assert lmi_handler.handle(Input(None)) is None
out = lmi_handler.handle(Input(json.dumps({"inputs": "Hi", "parameters": {"max_new_tokens": 4}}).encode()))
print(json.dumps({"code": out.code, "content": out.content}))
"""


@pytest.mark.slow
def test_custom_handler_loads_and_answers_on_the_image_libraries():
    stamp = TARGET / ".installed"
    if not stamp.is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(TARGET), *IMAGE_STACK],
            check=True,
            timeout=600,
        )
        stamp.write_text("\n".join(IMAGE_STACK))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TARGET), str(ROOT / "runtime"), str(ROOT / "constructs")])}
    process = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert process.returncode == 0, process.stderr[-2000:]
    import json

    result = json.loads(process.stdout.strip().splitlines()[-1])
    assert result["code"] == 200 and result["content"][0]["generated_text"]
