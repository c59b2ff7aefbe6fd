import pytest

from genai_cdk import INSTANCE_SPECS, LmiOptions, instance_spec

INF2_48 = instance_spec("ml.inf2.48xlarge")
G5_12 = instance_spec("ml.g5.12xlarge")


def test_options_render_as_option_environment_variables():
    env = LmiOptions(tensor_parallel_degree=24, n_positions=4096, max_rolling_batch_size=8,
                     compiled_graph_path="/opt/ml/model/compiled", neuron_optimize_level=2,
                     model_loading_timeout=1200, extra={"trust_remote_code": "true"}).to_environment(INF2_48)
    assert env == {
        "OPTION_TENSOR_PARALLEL_DEGREE": "24",
        "OPTION_ROLLING_BATCH": "auto",
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
    [("ml.inf2.xlarge", 2), ("ml.inf2.8xlarge", 2), ("ml.inf2.24xlarge", 12), ("ml.inf2.48xlarge", 24),
     ("ml.trn1.32xlarge", 32), ("ml.g5.2xlarge", 1), ("ml.g5.48xlarge", 8), ("ml.p4d.24xlarge", 8),
     ("ml.p5.48xlarge", 8), ("ml.g6.12xlarge", 4)],
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
        (LmiOptions(rolling_batch="tnx"), G5_12, "'tnx' runs on Neuron only"),
        (LmiOptions(rolling_batch="lmi-dist"), INF2_48, "'lmi-dist' needs GPUs"),
        (LmiOptions(dtype="auto"), INF2_48, "Neuron compiles for a fixed type"),
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
