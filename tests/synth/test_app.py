"""The shipped app: every environment synthesizes with the CDK CLI, passes cdk-nag and cfn-lint."""

from __future__ import annotations

import subprocess

import pytest
from aws_cdk import App
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match

from cdk_app.app import build_app
from cdk_app.demo import CDK_CLI, lint_template
from tests.conftest import ROOT

ENVIRONMENTS = ["dev", "staging", "prod"]


def test_every_environment_synthesizes_its_stacks(synthesized):
    expected = {
        "dev": ("network", "inference", "training", "rag", "agents"),
        "staging": ("network", "inference", "rag", "agents"),
        "prod": ("network", "inference", "training", "rag", "agents"),
    }
    assert sorted(synthesized.templates) == sorted(
        (env, f"genai-{env}-{stack}") for env, stacks in expected.items() for stack in stacks
    )


def test_prod_trains_on_four_trn1n_nodes_with_fsx(synthesized):
    template = synthesized.template("prod", "training")
    cluster = next(iter(template.find_resources("AWS::SageMaker::Cluster").values()))["Properties"]
    workers = [g for g in cluster["InstanceGroups"] if g["SlurmConfig"]["NodeType"] == "Compute"]
    assert [(g["InstanceType"], g["InstanceCount"]) for g in workers] == [
        ("ml.trn1n.32xlarge", 4),
        ("ml.g5.12xlarge", 1),
    ]
    template.has_resource_properties("AWS::FSx::FileSystem", {"StorageCapacity": 4800})


def test_prod_cluster_runs_slurm_with_a_controller_and_two_partitions(synthesized):
    template = synthesized.template("prod", "training")
    cluster = next(iter(template.find_resources("AWS::SageMaker::Cluster").values()))["Properties"]
    assert cluster["Orchestrator"] == {"Slurm": {"SlurmConfigStrategy": "Managed"}}
    assert [
        (g["InstanceGroupName"], g["SlurmConfig"], g.get("OnStartDeepHealthChecks")) for g in cluster["InstanceGroups"]
    ] == [
        ("controller", {"NodeType": "Controller"}, None),
        ("login", {"NodeType": "Login"}, None),
        ("trn1n", {"NodeType": "Compute", "PartitionNames": ["train"]}, ["InstanceStress"]),
        ("eval", {"NodeType": "Compute", "PartitionNames": ["eval"]}, None),
    ]
    assert {g["LifeCycleConfig"]["OnCreate"] for g in cluster["InstanceGroups"]} == {"on_create.sh"}
    template.resource_count_is("Custom::CDKBucketDeployment", 1)


def test_dev_cluster_turns_deep_health_checks_off(synthesized):
    template = synthesized.template("dev", "training")
    cluster = next(iter(template.find_resources("AWS::SageMaker::Cluster").values()))["Properties"]
    compute = [g for g in cluster["InstanceGroups"] if g["SlurmConfig"]["NodeType"] == "Compute"]
    assert [(g["SlurmConfig"]["PartitionNames"], g.get("OnStartDeepHealthChecks")) for g in compute] == [
        (["train"], None)
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cfn_lint_finds_no_errors(synthesized, env):
    for (environment, _), template in synthesized.templates.items():
        if environment == env:
            errors, warnings = lint_template(template)
            assert errors == [], errors
            assert warnings == [], warnings


def test_every_nag_acknowledgment_carries_a_reason(synthesized):
    acknowledged = 0
    for (env, stack), _ in synthesized.templates.items():
        for resource in synthesized.body(env, stack.split("-", 2)[2])["Resources"].values():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                if rule["id"].startswith("AwsSolutions-"):
                    acknowledged += 1
                    assert len(rule["reason"]) >= 40, rule
    assert acknowledged > 0


def test_cdk_nag_is_attached_and_fails_the_synth_on_an_error(tmp_path):
    app, stacks = build_app(App(outdir=str(tmp_path)), "dev")
    s3.Bucket(stacks[0], "BucketWithoutLogsOrTls")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-S1" in report and "AwsSolutions-S10" in report


def test_prod_serves_an_ab_test_a_shadow_test_and_autoscales(synthesized):
    template = synthesized.template("prod", "inference")
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                Match.object_like(
                    {
                        "VariantName": "A",
                        "InitialVariantWeight": 90,
                        "InitialInstanceCount": 9,
                        "InstanceType": "ml.inf2.48xlarge",
                    }
                ),
                Match.object_like({"VariantName": "B", "InitialVariantWeight": 10, "InitialInstanceCount": 1}),
            ],
        },
    )
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [Match.object_like({"VariantName": "current"})],
            "ShadowProductionVariants": [Match.object_like({"VariantName": "candidate"})],
            "DataCaptureConfig": Match.object_like({"EnableCapture": True, "InitialSamplingPercentage": 100}),
        },
    )
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 2)
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "MinCapacity": 1,
            "MaxCapacity": 20,
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        },
    )
    template.has_resource_properties(
        "AWS::SageMaker::Endpoint",
        {
            "DeploymentConfig": Match.object_like(
                {
                    "BlueGreenUpdatePolicy": Match.object_like(
                        {
                            "TrafficRoutingConfiguration": {
                                "Type": "CANARY",
                                "WaitIntervalInSeconds": 600,
                                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                            },
                        }
                    )
                }
            ),
        },
    )
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email"})


def test_dev_is_one_gpu_variant_without_autoscaling(synthesized):
    template = synthesized.template("dev", "inference")
    template.resource_count_is("AWS::SageMaker::Endpoint", 1)
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [Match.object_like({"InstanceType": "ml.g5.2xlarge", "VariantName": "AllTraffic"})],
        },
    )
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": Match.object_like(
                {
                    "Environment": Match.object_like(
                        {
                            "OPTION_ENTRYPOINT": "djl_python.lmi_vllm.vllm_async_service",
                            "OPTION_ASYNC_MODE": "true",
                            "OPTION_MAX_MODEL_LEN": "4096",
                        }
                    ),
                    "Image": Match.object_like(
                        {
                            "Fn::Join": [
                                "",
                                Match.array_with([Match.string_like_regexp(r"/djl-inference:0\.36\.0-lmi27")]),
                            ]
                        }
                    ),
                }
            )
        },
    )


def test_staging_uses_the_neuronx_image_and_twelve_neuron_cores(synthesized):
    template = synthesized.template("staging", "inference")
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": Match.object_like(
                {
                    "Environment": Match.object_like(
                        {"OPTION_TENSOR_PARALLEL_DEGREE": "12", "OPTION_N_POSITIONS": "4096"}
                    ),
                }
            )
        },
    )


def test_network_has_private_subnets_flow_logs_and_an_s3_endpoint(synthesized):
    template = synthesized.template("prod", "network")
    template.resource_count_is("AWS::EC2::NatGateway", 3)
    template.resource_count_is("AWS::EC2::FlowLog", 1)
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 365})
    template.has_resource_properties("AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway"})


def test_prod_stacks_have_termination_protection(synthesized):
    import json

    manifest = json.loads((synthesized.root / "prod" / "manifest.json").read_text())
    stacks = [a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"]
    assert stacks and all(a["properties"].get("terminationProtection") for a in stacks)


def test_cli_rejects_an_unknown_environment_with_the_known_ones():
    process = subprocess.run(
        [str(CDK_CLI), "synth", "-c", "env=qa", "--quiet", "-o", "/tmp/genai-cdk-badenv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert process.returncode != 0
    assert "env='qa' has no config file" in process.stderr
    assert "['dev', 'prod', 'staging']" in process.stderr


def test_an_existing_kms_key_can_be_used_instead_of_a_new_one():
    from aws_cdk.assertions import Template

    from cdk_app.app import build_stacks
    from cdk_app.config import KmsConfig, load_environment

    arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    config = load_environment("staging").model_copy(update={"kms": KmsConfig(key_arn=arn)})
    _, inference, *_ = build_stacks(App(), config)
    template = Template.from_stack(inference)
    template.resource_count_is("AWS::KMS::Key", 0)
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": arn})
    template.has_resource_properties("AWS::SageMaker::EndpointConfig", {"KmsKeyId": arn})


def test_training_stack_exports_the_pipeline_for_genai_train_submit(synthesized):
    from genai_runtime.train.submit import OUTPUT_KEY

    for env in ("dev", "prod"):
        body = synthesized.body(env, "training")
        machine = next(key for key, r in body["Resources"].items() if r["Type"] == "AWS::StepFunctions::StateMachine")
        assert body["Outputs"][OUTPUT_KEY]["Value"] == {"Ref": machine}
