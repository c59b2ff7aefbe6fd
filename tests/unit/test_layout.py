"""Package layout guards (README, Layout): no constructs/__init__.py shadowing jsii's ``constructs``, a light import."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def _run(code: str) -> dict:
    # Run from the repo root with it first on sys.path, as `python -m pytest` / `python -m cdk_app` do.
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1", "PATH": "/usr/bin:/bin"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_constructs_folder_has_no_init_file():
    assert not (ROOT / "constructs" / "__init__.py").exists()


def test_import_constructs_resolves_to_the_jsii_library_while_genai_cdk_imports():
    found = _run(
        "import sys, json; sys.path.insert(0, '.'); import constructs, genai_cdk; "
        "print(json.dumps({'constructs': constructs.__file__, 'construct': hasattr(constructs, 'Construct'), "
        "'genai_cdk': genai_cdk.__file__}))"
    )
    assert "site-packages" in found["constructs"]
    assert found["construct"] is True
    assert found["genai_cdk"].startswith(str(ROOT / "constructs" / "genai_cdk"))


def test_import_genai_cdk_does_not_import_torch_or_transformers():
    loaded = _run(
        "import sys, json; import genai_cdk; "
        "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules)))"
    )
    assert loaded == []


def test_option_types_load_without_aws_cdk_lib():
    # The container runtime renders serving.properties from LmiOptions without aws-cdk-lib.
    loaded = _run(
        "import sys, json; from genai_cdk.lmi_options import LmiOptions; from genai_cdk import instance_spec; "
        "print(json.dumps(sorted(m for m in ('aws_cdk', 'jsii') if m in sys.modules)))"
    )
    assert loaded == []
