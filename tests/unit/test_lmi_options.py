import pytest

from genai_cdk import INSTANCE_SPECS, LmiOptions, instance_spec

INF2_48 = instance_spec("ml.inf2.48xlarge")
G5_12 = instance_spec("ml.g5.12xlarge")


def test_options_render_as_option_environment_variables():
    env = LmiOptions(
        tensor_parallel_degree=24,
        n_positions=4096,
        max_rolling_batch_size=8,
        compiled_graph_path="/opt/ml/model/compiled",
        neuron_optimize_level=2,
        model_loading_timeout=1200,
        extra={"trust_remote_code": "true"},
    ).to_environment(INF2_48)
    assert env == {
        "OPTION_TENSOR_PARALLEL_DEGREE": "24",
        "OPTION_ENTRYPOINT": "djl_python.transformers_neuronx",
        "OPTION_ROLLING_BATCH": "tnx",
        "OPTION_MAX_ROLLING_BATCH_SIZE": "8",
        "OPTION_DTYPE": "fp16",
        "OPTION_N_POSITIONS": "4096",
        "OPTION_COMPILED_GRAPH_PATH": "/opt/ml/model/compiled",
        "OPTION_NEURON_OPTIMIZE_LEVEL": "2",
        "OPTION_MODEL_LOADING_TIMEOUT": "1200",
        "OPTION_TRUST_REMOTE_CODE": "true",
    }


def test_unset_tensor_parallel_degree_uses_every_accelerator():
    assert LmiOptions().to_environment(G5_12)["OPTION_TENSOR_PARALLEL_DEGREE"] == "4"
    assert LmiOptions().to_environment(INF2_48)["OPTION_TENSOR_PARALLEL_DEGREE"] == "24"


def test_serving_properties_match_the_environment():
    options = LmiOptions(model_id="s3://bucket/llama/", rolling_batch="vllm", max_model_len=4096)
    props = options.to_serving_properties(G5_12)
    assert props.splitlines()[0] == "engine=Python"
    from_props = {
        "OPTION_" + line.split("=", 1)[0].removeprefix("option.").upper(): line.split("=", 1)[1]
        for line in props.splitlines()[1:]
    }
    assert from_props == options.to_environment(G5_12)


@pytest.mark.parametrize(
    ("instance_type", "cores"),
    [
        ("ml.inf2.xlarge", 2),
        ("ml.inf2.8xlarge", 2),
        ("ml.inf2.24xlarge", 12),
        ("ml.inf2.48xlarge", 24),
        ("ml.trn1.32xlarge", 32),
        ("ml.g5.2xlarge", 1),
        ("ml.g5.48xlarge", 8),
        ("ml.p4d.24xlarge", 8),
        ("ml.p5.48xlarge", 8),
        ("ml.g6.12xlarge", 4),
    ],
)
def test_accelerator_counts(instance_type, cores):
    assert INSTANCE_SPECS[instance_type].accelerator_count == cores


def test_tensor_parallel_degree_larger_than_the_instance_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match=r"options.tensor_parallel_degree=4 .*ml.inf2.xlarge has 2 NeuronCores"):
        LmiOptions(tensor_parallel_degree=4).validate_for(instance_spec("ml.inf2.xlarge"))
    with pytest.raises(ValueError, match=r"ml.g5.12xlarge has 4 GPUs"):
        LmiOptions(tensor_parallel_degree=8).validate_for(G5_12)


def test_tensor_parallel_degree_must_divide_the_accelerators():
    with pytest.raises(ValueError, match="divide the 24 accelerators"):
        LmiOptions(tensor_parallel_degree=5).validate_for(INF2_48)


@pytest.mark.parametrize(
    ("options", "spec", "message"),
    [
        (LmiOptions(n_positions=4096), G5_12, "n_positions=4096 .*Neuron option"),
        (LmiOptions(neuron_optimize_level=2), G5_12, "neuron_optimize_level"),
        (LmiOptions(rolling_batch="tnx"), G5_12, "GPU image's engine is vLLM"),
        (LmiOptions(rolling_batch="vllm"), INF2_48, "engine is transformers-neuronx"),
        (LmiOptions(dtype="auto"), INF2_48, "Neuron compiles for a fixed type"),
        (LmiOptions(max_model_len=4096), INF2_48, "set n_positions on Neuron"),
        (LmiOptions(enable_lora=True), INF2_48, "serves no LoRA adapters"),
        (LmiOptions(extra={"gpu_memory_utilisation": "0.8"}), G5_12, "Did you mean gpu_memory_utilization"),
        (LmiOptions(extra={"mdoe": "x"}), G5_12, "would ignore it without a word"),
        (LmiOptions(extra={"gpu_memory_utilization": "0.8"}), INF2_48, "transformers-neuronx"),
    ],
)
def test_options_that_do_not_fit_the_accelerator(options, spec, message):
    with pytest.raises(ValueError, match=message):
        options.validate_for(spec)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tensor_parallel_degree": 0}, "tensor_parallel_degree=0 is invalid: must be at least 1"),
        ({"rolling_batch": "fast"}, "rolling_batch='fast' is invalid: choose one of"),
        ({"rolling_batch": "lmi-dist"}, "rolling_batch='lmi-dist' is invalid"),
        ({"entry_point": "genai_runtime.inference.lmi_handler"}, "works only with rolling_batch='disable'"),
        ({"entry_point": "not a module"}, "Python module path"),
        ({"max_loras": 2}, "only with enable_lora=True"),
        ({"extra": {"async_mode": "true"}}, "typed field options.async_mode"),
        ({"dtype": "int4"}, "dtype='int4'"),
        ({"max_rolling_batch_size": 0}, "max_rolling_batch_size"),
        ({"neuron_optimize_level": 4}, "neuron_optimize_level=4 .*at most 3"),
        ({"model_loading_timeout": 7200}, "model_loading_timeout=7200 .*at most 3600"),
        ({"n_positions": "4096"}, "n_positions='4096' is invalid: expected an integer"),
        ({"model_id": " "}, "model_id"),
        ({"extra": {"Bad-Key": "x"}}, "lower_snake_case"),
        ({"extra": {"dtype": "fp16"}}, "typed field options.dtype"),
        ({"extra": {"trust_remote_code": True}}, "values are strings"),
    ],
)
def test_bad_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LmiOptions(**kwargs)


def test_unknown_instance_type_lists_the_known_families():
    with pytest.raises(ValueError, match=r"instance_type='ml.m5.xlarge' is invalid: .*known families: .*inf2"):
        instance_spec("ml.m5.xlarge")


def test_gpu_auto_is_written_out_as_lmi_resolves_it():
    # LmiConfigRecommender turns rolling_batch=auto into async_mode=true + rolling_batch=disable and
    # PyModel picks the vLLM async service; written out, a model.py can never become the entry point.
    env = LmiOptions(enable_lora=True, max_loras=2, max_lora_rank=32).to_environment(G5_12)
    assert env["OPTION_ENTRYPOINT"] == "djl_python.lmi_vllm.vllm_async_service"
    assert (env["OPTION_ASYNC_MODE"], env["OPTION_ROLLING_BATCH"]) == ("true", "disable")
    assert (env["OPTION_ENABLE_LORA"], env["OPTION_MAX_LORAS"], env["OPTION_MAX_LORA_RANK"]) == ("true", "2", "32")
    legacy = LmiOptions(rolling_batch="vllm").to_environment(G5_12)
    assert (legacy["OPTION_ENTRYPOINT"], legacy["OPTION_ROLLING_BATCH"]) == ("djl_python.huggingface", "vllm")
    assert "OPTION_ASYNC_MODE" not in legacy


def test_custom_handler_renders_with_rolling_batch_disabled():
    options = LmiOptions(entry_point="genai_runtime.inference.lmi_handler", rolling_batch="disable")
    env = options.to_environment(G5_12)
    assert (env["OPTION_ENTRYPOINT"], env["OPTION_ROLLING_BATCH"]) == ("genai_runtime.inference.lmi_handler", "disable")
    assert "OPTION_ASYNC_MODE" not in env


def test_vllm_pass_through_keys_are_accepted():
    LmiOptions(extra={"gpu_memory_utilization": "0.85", "enable_prefix_caching": "true"}).validate_for(G5_12)
    LmiOptions(extra={"context_length_estimate": "[1024, 2048]"}, n_positions=4096).validate_for(INF2_48)
