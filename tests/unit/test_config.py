"""Environment configs: every shipped one loads; a misspelled key or a bad value names the key."""

import textwrap

import pytest

from cdk_app.config import ConfigError, load_environment
from cdk_app.environments import ENVIRONMENTS_DIR, available_environments


def test_the_three_environments_ship_and_load():
    assert available_environments() == ["dev", "prod", "staging"]
    for name in available_environments():
        config = load_environment(name)
        assert config.name == name


def test_prod_runs_the_books_ab_test_and_a_shadow_test():
    inference = load_environment("prod").inference
    assert [(v.name, v.weight, v.instance_count) for v in inference.variants] == [("A", 90, 9), ("B", 10, 1)]
    assert inference.shadow_test is not None
    assert inference.autoscaling.target_invocations_per_instance == 1000


BASE = """
region: us-east-1
network:
  availability_zones: [us-east-1a, us-east-1b]
inference:
  model: {bucket: my-models, prefix: llama/}
  instance_type: ml.inf2.xlarge
"""


def _load(tmp_path, text):
    (tmp_path / "test.yaml").write_text(textwrap.dedent(text))
    return load_environment("test", directory=tmp_path)


def test_minimal_config_loads_with_defaults(tmp_path):
    config = _load(tmp_path, BASE)
    assert config.inference.rollout.strategy == "all_at_once"
    assert config.network.nat_gateways == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("regoin: us-west-2\n", r"test.yaml: regoin: unknown key \(misspelled\?\)"),
        (
            "inference:\n  model: {bucket: my-models, prefix: llama/}\n  instance_type: ml.inf2.xlarge\n"
            "  autoscalling: {}\n",
            r"inference.autoscalling: unknown key",
        ),
        (
            "inference:\n  model: {bucket: my-models, prefix: llama/}\n  instance_type: ml.inf2.xlarge\n"
            "  options: {tensor_parallel_degree: 8}\n",
            r"inference: options.tensor_parallel_degree=8 is invalid: ml.inf2.xlarge has 2 NeuronCores",
        ),
        (
            "inference:\n  model: {bucket: my-models, prefix: llama/}\n  instance_type: ml.x9.huge\n",
            r"inference.instance_type: instance_type='ml.x9.huge' is invalid",
        ),
        (
            "inference:\n  model: {bucket: My_Models, prefix: llama/}\n  instance_type: ml.inf2.xlarge\n",
            r"inference.model.bucket: String should match pattern",
        ),
        (
            "inference:\n  model: {bucket: my-models, prefix: llama/}\n  instance_type: ml.inf2.xlarge\n"
            "  autoscaling: {min_capacity: 5, max_capacity: 2}\n",
            r"inference.autoscaling: .*min_capacity=5",
        ),
        (
            "inference:\n  model: {bucket: my-models, prefix: llama/}\n  instance_type: ml.inf2.xlarge\n"
            "  rollout: {strategy: canary, percent: 75}\n",
            r"inference.rollout: rollout.percent=75",
        ),
        (
            "network:\n  availability_zones: [us-east-1a, us-east-1b]\n  nat_gateways: 3\n",
            r"network: nat_gateways=3 exceeds the 2 availability_zones",
        ),
        ("network:\n  availability_zones: [us-east-1a, us-east-1b]\n  cidr: 10.0.0.0/24\n", r"network.cidr"),
        (
            "network:\n  availability_zones: [us-east-1a, us-east-1b]\n  flow_log_retention_days: 42\n",
            r"network.flow_log_retention_days: .*one of",
        ),
        ("account: '12345'\n", r"account: String should match pattern"),
        (
            "network:\n  availability_zones: [eu-west-1a, eu-west-1b]\n",
            r"\['eu-west-1a', 'eu-west-1b'\] are not zones of region us-east-1",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path, extra, message):
    # Later top-level keys replace the base ones (YAML merge by last-wins on the parsed dict).
    import yaml

    merged = {**yaml.safe_load(BASE), **yaml.safe_load(extra)}
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, yaml.safe_dump(merged))


def test_unknown_environment_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"env='qa' has no config file .*\['dev', 'prod', 'staging'\]"):
        load_environment("qa")


def test_environment_name_is_validated():
    with pytest.raises(ConfigError, match="not a valid environment name"):
        load_environment("../etc/passwd")


def test_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping"):
        _load(tmp_path, "- a\n- b\n")


def test_environments_dir_is_the_package_folder():
    assert (ENVIRONMENTS_DIR / "prod.yaml").is_file()


def test_kms_key_arn_is_validated(tmp_path):
    import yaml

    merged = {**yaml.safe_load(BASE), "kms": {"key_arn": "arn:aws:kms:us-east-1:123456789012:alias/mine"}}
    with pytest.raises(ConfigError, match=r"kms.key_arn: String should match pattern"):
        _load(tmp_path, yaml.safe_dump(merged))
    merged["kms"]["key_arn"] = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert _load(tmp_path, yaml.safe_dump(merged)).kms.key_arn.endswith("567890ab")
