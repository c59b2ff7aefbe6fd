"""Session-wide settings: quiet jsii, no credential lookups, and the repo root importable."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
# cfn-lint checks every template; the built-in CloudFormation validation pass only costs seconds.
os.environ.setdefault("CDK_VALIDATION", "false")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    # One ONNX export cache per test session (and its subprocesses), never the user's ~/.cache.
    if "GENAI_CACHE_DIR" not in os.environ:
        import tempfile

        os.environ["GENAI_CACHE_DIR"] = tempfile.mkdtemp(prefix="genai-cache-")
