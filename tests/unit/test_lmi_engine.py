"""The option keys we allow are the pinned engines' own: re-read from DJL Serving's released source."""

from __future__ import annotations

import ast

import pytest

from genai_cdk import LmiOptions, instance_spec, lmi_engine
from tests.runtime import djl_harness

needs_harness = pytest.mark.skipif(
    not djl_harness.available(), reason=f"DJL Serving harness not found at {djl_harness.HARNESS}"
)


def _fields(path, class_name: str) -> set[str]:
    tree = ast.parse(path.read_text())
    (node,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    return {item.target.id for item in node.body if isinstance(item, ast.AnnAssign)} - {"model_config"}


def _aliases(path, class_name: str) -> set[str]:
    tree = ast.parse(path.read_text())
    (node,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    return {
        kw.value.value
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
        for kw in call.keywords
        if kw.arg == "alias"
    }


@needs_harness
def test_property_fields_are_the_harness_engines():
    managers = djl_harness.ENGINE / "djl_python" / "properties_manager"
    assert _fields(managers / "properties.py", "Properties") == lmi_engine.PROPERTIES_FIELDS
    assert _fields(managers / "vllm_rb_properties.py", "VllmRbProperties") == lmi_engine.VLLM_RB_PROPERTIES_FIELDS
    assert _aliases(managers / "vllm_rb_properties.py", "VllmRbProperties") == lmi_engine.VLLM_RB_ALIASES


@needs_harness
def test_rolling_batch_and_dtype_choices_exist_in_the_engine():
    source = (djl_harness.ENGINE / "djl_python" / "properties_manager" / "properties.py").read_text()
    tree = ast.parse(source)
    (enum,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RollingBatchEnum"]
    values = {item.value.value for item in enum.body if isinstance(item, ast.Assign)}
    assert set(lmi_engine.GPU_ROLLING_BATCH) <= values and "lmi-dist" not in values
    vllm = (djl_harness.ENGINE / "djl_python" / "properties_manager" / "vllm_rb_properties.py").read_text()
    for dtype in lmi_engine.GPU_DTYPES:
        assert f'"{dtype}":' in vllm  # a DTYPE_MAPPER key


@needs_harness
def test_entry_points_we_emit_are_modules_of_the_engine():
    root = djl_harness.ENGINE
    for module in (lmi_engine.VLLM_ASYNC_SERVICE, lmi_engine.HUGGINGFACE_SERVICE):
        assert (root / (module.replace(".", "/") + ".py")).is_file(), module


@needs_harness
def test_documented_server_keys():
    docs = (djl_harness.DOCS / "deployment_guide" / "configurations.md").read_text()
    for key in ("model_loading_timeout", "entryPoint", "parallel_loading", "model_id", "job_queue_size"):
        assert key in docs
    service = (djl_harness.ENGINE / "djl_python" / "lmi_vllm" / "vllm_async_service.py").read_text()
    assert '"lmcache_config_file"' in service and '"enable_stateful_sessions"' in service


@pytest.mark.parametrize("instance_type", ["ml.g5.12xlarge", "ml.p4d.24xlarge", "ml.inf2.48xlarge", "ml.trn1.32xlarge"])
def test_every_key_we_emit_is_known_to_the_pinned_engine(instance_type):
    spec = instance_spec(instance_type)
    if spec.accelerator == "gpu":
        options = LmiOptions(
            model_id="s3://b/m/", max_model_len=4096, enable_lora=True, max_loras=2, max_lora_rank=64, dtype="bf16"
        )
    else:
        options = LmiOptions(
            n_positions=4096,
            max_rolling_batch_size=8,
            compiled_graph_path="/opt/ml/model/compiled",
            neuron_optimize_level=2,
        )
    keys = set(options.options(spec))
    assert keys <= lmi_engine.accepted_keys(spec.flavor), keys - lmi_engine.accepted_keys(spec.flavor)
    assert "max_lora_rank" in lmi_engine.vllm_engine_args() and "max_model_len" in lmi_engine.vllm_engine_args()
