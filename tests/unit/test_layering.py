"""Imports point one way: the contracts (``genai_contracts``) import nothing of ours and nothing heavier
than pydantic; the construct library never imports the runtime, the Lambda handlers or the app; the
runtime never imports the construct library (it takes the contracts from ``genai_contracts``), the
handlers or the app. Read off every module's import statements (static and
``importlib.import_module("...")`` literals), so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

FORBIDDEN = {
    "constructs/genai_contracts": (
        "genai_cdk",
        "genai_runtime",
        "lambdas",
        "cdk_app",
        "aws_cdk",
        "constructs",
        "jsii",
        "cdk_nag",
        "torch",
        "transformers",
        "boto3",
        "botocore",
        "aws_lambda_powertools",
        "langchain",
        "langchain_core",
        "opensearchpy",
        "yaml",
    ),
    "constructs/genai_cdk": ("genai_runtime", "lambdas", "cdk_app"),
    "runtime/genai_runtime": ("genai_cdk", "lambdas", "cdk_app"),
}
# What the contracts may import at all: pydantic and the standard library.
CONTRACT_IMPORTS = {"pydantic"} | set(sys.stdlib_module_names)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_one_way(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN[package]:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_the_scan_sees_lazy_and_dynamic_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    import lambdas.x\n    from cdk_app import y\n    importlib.import_module('lambdas.z')\n"
    )
    assert _imports(sample) == {"lambdas.x", "cdk_app", "lambdas.z"}


def test_the_contracts_import_only_pydantic_and_the_standard_library():
    offenders = []
    for path in sorted((ROOT / "constructs" / "genai_contracts").rglob("*.py")):
        for name in _imports(path):
            if name.split(".")[0] not in CONTRACT_IMPORTS:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_the_contracts_and_the_runtime_contract_users_load_no_heavy_library():
    # Run in a fresh interpreter: what importing every contract module (and the runtime modules that only
    # render them) pulls in, transitively.
    code = (
        "import sys, json, pkgutil, importlib, genai_contracts\n"
        "for m in pkgutil.iter_modules(genai_contracts.__path__, 'genai_contracts.'): importlib.import_module(m.name)\n"
        "import genai_runtime.inference.serving_properties, genai_runtime.rag.search\n"
        "print(json.dumps(sorted(m for m in ('aws_cdk', 'jsii', 'constructs', 'genai_cdk', 'torch', 'transformers',"
        " 'boto3', 'botocore') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
