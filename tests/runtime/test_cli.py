"""The `genai` command: help everywhere, one-line reasons and exit code 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from genai_runtime.cli import main


def _genai(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genai_runtime.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("command", [[], ["model"], ["model", "tiny"], ["model", "memory"], ["serve"], ["optimize"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: genai" in capsys.readouterr().out


def test_help_does_not_import_torch():
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from genai_runtime.cli import main\n"
            "try: main(['serve', '--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
    )
    assert process.stdout.strip().endswith("False")


def test_memory_estimate_follows_the_books_table(capsys):
    assert main(["model", "memory", "--params", "1e9", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_bytes"] == 4e9
    assert main(["model", "memory", "--params", "1e9", "--mode", "train", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bytes_per_parameter"] == 24
    assert main(["model", "memory", "--params", "7e9", "--dtype", "int8"]) == 0
    assert capsys.readouterr().out.strip() == "7e+09 parameters in int8: 1 bytes each, 6.5 GiB to load"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model", "memory", "--params", "lots"], "argument --params: 'lots' is not a number"),
        (["model", "memory", "--params", "0"], "must be above 0"),
        (["model", "memory", "--params", "1e9", "--dtype", "fp8"], "invalid choice: 'fp8'"),
        (["serve", "--model", "/nonexistent"], "/nonexistent is not a model folder"),
        (["serve", "--model", "{model}", "--port", "70000"], "70000 is not a TCP port"),
        (["model", "tiny", "--out", "{model}"], "folder is not empty"),
        (["model", "tiny", "--out", "/tmp/x", "--arch", "bert"], "invalid choice: 'bert'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_reason(args, message, tiny_model):
    process = _genai(*[a.replace("{model}", str(tiny_model)) for a in args])
    assert process.returncode == 2
    last = process.stderr.strip().splitlines()[-1]
    assert message in last and "Traceback" not in process.stderr


def test_tiny_model_is_a_loadable_causal_lm(tiny_model):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_model)
    assert config.model_type == "llama" and config.num_hidden_layers == 2
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    text = "#Person1#: Summarize the report before Friday."
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    assert (tiny_model / "model.safetensors").stat().st_size < 2_000_000


def test_genai_model_tiny_writes_a_gpt2_too(tmp_path):
    process = _genai("model", "tiny", "--out", str(tmp_path / "gpt2"), "--arch", "gpt2")
    assert process.returncode == 0, process.stderr
    assert json.loads((tmp_path / "gpt2" / "config.json").read_text())["model_type"] == "gpt2"
