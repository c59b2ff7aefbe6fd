"""A platform team's app across stacks: a base stack and one stack per capability, nag- and lint-clean.

Only the public ``genai_cdk`` import. The base stack holds the VPC, the buckets and a KMS key; the
inference, training, RAG and agents stacks use them, a third stack holds the role that may invoke
the endpoints, another the user's own Lambdas (an action group, a vector-store reader). Once with the
buckets created in the base stack, once imported by name; one synthesis for the module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from aws_cdk import Acknowledgment, App, Duration, Environment, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

from cdk_app.demo import lint_template

ENV = Environment(account="123456789012", region="us-east-1")
ZONES = ["us-east-1a", "us-east-1b"]
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
INSTRUCTION = "You are an insurance claims assistant: list open claims and send renewal reminders."
TRAINING_IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/genai-train:1.0"
SCHEMA = {
    "openapi": "3.0.0",
    "info": {"title": "claims", "version": "1"},
    "paths": {"/claims": {"get": {"operationId": "listClaims", "description": "open claims"}}},
}
VARIANTS = {"Created": False, "Imported": True}
CAPABILITIES = ("Base", "Callers", "Inference", "Training", "Rag", "Tools", "Agents")


def build_platform(app: App, prefix: str, *, imported_buckets: bool) -> None:
    """The platform as its team would write it; stacks are named ``{prefix}{capability}``."""
    from genai_cdk import (
        ActionGroup,
        AgentApi,
        Autoscaling,
        BedrockAgent,
        BedrockGovernance,
        DataCapture,
        EmbeddingModel,
        FineTuningPipeline,
        GuardrailPolicy,
        IngestionPipeline,
        InstanceGroup,
        KnowledgeBase,
        LmiEndpoint,
        LmiOptions,
        ModelArtifact,
        QualityGate,
        RagApi,
        Rollout,
        ServerlessDeployment,
        StepScaling,
        TextGenerator,
        TrainingJobSettings,
        TrainiumCluster,
        Variant,
        VectorStore,
    )

    def stack(name: str) -> Stack:
        return Stack(app, f"{prefix}{name}", env=ENV)

    # ---- base: network, buckets, key
    base = stack("Base")
    base.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
    vpc = ec2.Vpc(
        base,
        "Vpc",
        availability_zones=ZONES,
        nat_gateways=1,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
            ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        ],
        flow_logs={"All": ec2.FlowLogOptions()},
    )
    key = kms.Key(base, "Key", enable_key_rotation=True, description="platform data")
    if imported_buckets:
        models = s3.Bucket.from_bucket_name(base, "Models", f"{prefix.lower()}-team-models")
        data = s3.Bucket.from_bucket_name(base, "Data", f"{prefix.lower()}-team-data")
    else:
        access_logs = s3.Bucket(
            base,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        )
        Validations.of(access_logs).acknowledge(
            Acknowledgment(id="AwsSolutions-S1", reason="This bucket receives the other buckets' access logs.")
        )

        def bucket(name: str) -> s3.Bucket:
            return s3.Bucket(
                base,
                name,
                encryption=s3.BucketEncryption.KMS,
                encryption_key=key,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                enforce_ssl=True,
                versioned=True,
                server_access_logs_bucket=access_logs,
                server_access_logs_prefix=f"{name.lower()}/",
            )

        models, data = bucket("Models"), bucket("Data")

    # ---- a role of a third stack that calls the endpoints
    callers = stack("Callers")
    caller = iam.Role(callers, "Caller", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))

    # ---- inference: an A/B test, and a shadow test with data capture into the base stack's bucket
    inference = stack("Inference")
    llm = LmiEndpoint(
        inference,
        "Llm",
        model=ModelArtifact.from_s3_prefix(models, "llama2-7b-neuron/"),
        instance_type="ml.inf2.48xlarge",
        options=LmiOptions(tensor_parallel_degree=24, n_positions=4096, max_rolling_batch_size=8),
        variants=[
            Variant("A", weight=90, instance_count=9),
            Variant(
                "B", weight=10, instance_count=1, model=ModelArtifact.from_s3_prefix(models, "llama2-7b-neuron-v2/")
            ),
        ],
        autoscaling=Autoscaling(
            min_capacity=1, max_capacity=20, target_invocations_per_instance=1000, step_scaling=StepScaling()
        ),
        rollout=Rollout.canary(percent=10, wait=Duration.minutes(10)),
        vpc=vpc,
        network_isolation=True,
        encryption_key=key,
    )
    shadowed = LmiEndpoint(
        inference,
        "Shadowed",
        model=ModelArtifact.from_s3_object(models, "llama/model.tar.gz"),
        instance_type="ml.g5.12xlarge",
        options=LmiOptions(rolling_batch="vllm", max_model_len=4096, model_loading_timeout=1200),
        shadow=Variant("next", model=ModelArtifact.from_s3_prefix(models, "next/")),
        data_capture=DataCapture(sampling_percentage=50, bucket=data, prefix="capture"),
        rollout=Rollout.rolling(batch_percent=25),
        container_startup_timeout=Duration.minutes(30),
        vpc=vpc,
    )
    llm.grant_invoke(caller)
    shadowed.grant_invoke(caller)

    # ---- training over the base stack's buckets and VPC
    training = stack("Training")
    FineTuningPipeline(
        training,
        "Sft",
        training_image=TRAINING_IMAGE,
        base_model_bucket=models,
        base_model_prefix="llama2-7b/",
        data_bucket=data,
        hyperparameters={"mode": "lora", "lora__r": "16"},
        quality_gate=QualityGate("rougeL", 0.25),
        training=TrainingJobSettings("ml.trn1.32xlarge", 2),
    )
    TrainiumCluster(
        training,
        "Cluster",
        vpc=vpc,
        data_bucket=data,
        data_prefix="samsum",
        availability_zone="us-east-1b",
        workers=[InstanceGroup("trn1", instance_count=2)],
    )

    # ---- RAG: a managed domain with ingestion and a query API, and a Serverless store for the agents
    rag = stack("Rag")
    minilm = EmbeddingModel.sagemaker("minilm", 384)
    documents = VectorStore(rag, "Documents", vpc=vpc, metadata_fields={"year": "integer"})
    IngestionPipeline(rag, "Ingestion", vector_store=documents, vpc=vpc, embeddings=minilm)
    RagApi(rag, "Api", vector_store=documents, vpc=vpc, embeddings=minilm, generator=TextGenerator.lmi_endpoint(llm))
    knowledge = VectorStore(rag, "Knowledge", vpc=vpc, deployment=ServerlessDeployment(), dimension=1024)

    # ---- the user's own Lambdas, in a stack of their own and the base stack's VPC
    tools = stack("Tools")

    def user_function(name: str, role: iam.IRole | None = None) -> lambda_.Function:
        function = lambda_.Function(
            tools,
            name,
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="index.handler",
            code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
            vpc=vpc,
            role=role,
        )
        for policy in ("AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole"):
            Validations.of(function.role).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{policy}]",
                    reason="Our team's functions log and attach to the VPC with the AWS managed policies.",
                )
            )
        return function

    claims = user_function("Claims")
    reader_role = iam.Role(
        tools,
        "ReaderRole",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        role_name=f"{prefix.lower()}-rag-reader",  # a managed-domain store maps the role by its ARN
        managed_policies=[
            iam.ManagedPolicy.from_aws_managed_policy_name(f"service-role/{p}")
            for p in ("AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole")
        ],
    )
    reader = user_function("Reader", reader_role)
    documents.grant_read(reader)
    knowledge.grant_read(reader)

    # ---- agents: a knowledge base over the RAG stack's Serverless store, the Tools stack's action group
    agents = stack("Agents")
    knowledge_base = KnowledgeBase(
        agents, "KnowledgeBase", vector_store=knowledge, documents=data, documents_prefix="knowledge-base/"
    )
    agent = BedrockAgent(
        agents,
        "Agent",
        foundation_model=HAIKU,
        instruction=INSTRUCTION,
        action_groups=[ActionGroup("Claims", claims, SCHEMA)],
        guardrail=GuardrailPolicy(),
        knowledge_bases=[knowledge_base.attachment],
    )
    AgentApi(agents, "Api", agent=agent, vpc=vpc)
    if not imported_buckets:  # one per account and Region in an app (the second platform shares them)
        BedrockGovernance(agents, "Governance", vpc=vpc, model_ids=[HAIKU], owns_invocation_logging=True)


@dataclass
class Platform:
    outdir: Path
    manifest: dict

    def template(self, stack: str) -> dict:
        return json.loads((self.outdir / f"{stack}.template.json").read_text())

    @property
    def stacks(self) -> list[str]:
        return [n for n, a in self.manifest["artifacts"].items() if a["type"] == "aws:cloudformation:stack"]

    def dependencies(self, stack: str) -> set[str]:
        return {d for d in self.manifest["artifacts"][stack].get("dependencies", []) if d in self.stacks}


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Platform:
    outdir = tmp_path_factory.mktemp("multistack")  # CDK_VALIDATION=false comes from tests/conftest.py
    app = App(outdir=str(outdir))
    for prefix, imported in VARIANTS.items():
        build_platform(app, prefix, imported_buckets=imported)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    try:
        app.synth()
    except RuntimeError as error:  # a dependency cycle, or cdk-nag errors (then the report says which)
        report = outdir / "validation-report.json"
        details = ""
        if report.exists():
            details = "\n".join(
                f"{v['ruleName']} at {[r['constructPath'] for r in v['violatingConstructs']]}"
                for plugin in json.loads(report.read_text())["pluginReports"]
                for v in plugin["violations"]
                if v["severity"] == "error"
            )
        pytest.fail(f"synth failed: {error}\n{details}")
    return Platform(outdir, json.loads((outdir / "manifest.json").read_text()))


def _arns(node):
    """Every ARN of a template, flattened: intrinsic functions become ``<...>``."""
    if isinstance(node, dict):
        if "Fn::Join" in node and isinstance(node["Fn::Join"], list):
            delimiter, parts = node["Fn::Join"]
            flat = delimiter.join(p if isinstance(p, str) else "<ref>" for p in parts)
            if flat.startswith("arn:"):
                yield flat
            for part in parts:
                if not isinstance(part, str):
                    yield from _arns(part)
            return
        for value in node.values():
            yield from _arns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _arns(value)
    elif isinstance(node, str) and node.startswith("arn:"):
        yield node


def test_cdk_nag_reports_no_error(platform):
    report = platform.outdir / "validation-report.json"  # the synth raises on errors; a report lists warnings only
    if report.exists():
        errors = [
            v["ruleName"]
            for plugin in json.loads(report.read_text())["pluginReports"]
            for v in plugin["violations"]
            if v["severity"] == "error" and v["ruleName"].startswith("AwsSolutions-")
        ]
        assert errors == []


def test_every_stack_synthesizes_and_dependencies_point_one_way(platform):
    for prefix in VARIANTS:
        assert {f"{prefix}{c}" for c in CAPABILITIES} <= set(platform.stacks)
        depends = {c: {d.removeprefix(prefix) for d in platform.dependencies(f"{prefix}{c}")} for c in CAPABILITIES}
        assert depends["Base"] == set()
        assert depends["Rag"] == {"Base"}  # never the agents or the tools that use its stores
        assert depends["Tools"] == {"Base", "Rag"}  # never the agent that invokes its function
        assert depends["Agents"] >= {"Base", "Rag", "Tools"}
        assert "Agents" not in set().union(*depends.values())


def test_cfn_lint_finds_no_errors_in_any_template(platform):
    for stack in platform.stacks:
        errors, _ = lint_template(platform.outdir / f"{stack}.template.json")
        assert errors == [], (stack, errors)


def test_no_unresolved_token_and_no_broken_arn(platform):
    part = r"(<ref>|[A-Za-z0-9-]*)"
    shape = re.compile(rf"^arn:{part}:(?P<service>[a-z0-9-]+):(?P<region>{part}):(?P<account>{part}):.+")
    for stack in platform.stacks:
        text = (platform.outdir / f"{stack}.template.json").read_text()
        assert "${Token[" not in text, stack
        for arn in _arns(json.loads(text)):
            match = shape.match(re.sub(r"\$\{[^}]+\}", "<ref>", arn))  # Fn::Sub variables
            assert match, (stack, arn)
            assert match["region"] in ("", "<ref>") or re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", match["region"]), arn
            account = match["account"]
            integration = match["service"] == "apigateway" and account == "lambda"  # arn:...:apigateway:R:lambda:path/
            assert integration or account in ("", "<ref>", "aws") or re.fullmatch(r"\d{12}", account), arn
            assert match["service"] != match["region"], arn  # e.g. arn:aws:ecr:ecr:...


def test_every_import_has_an_export(platform):
    exports = {
        output["Export"]["Name"]
        for stack in platform.stacks
        for output in platform.template(stack).get("Outputs", {}).values()
        if "Export" in output
    }
    for stack in platform.stacks:
        for node in _dicts(platform.template(stack)):
            if "Fn::ImportValue" in node:
                assert node["Fn::ImportValue"] in exports, (stack, node)


def _dicts(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _dicts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dicts(value)


def _acknowledged(template: dict) -> dict[str, str]:
    return {
        rule["id"]: rule["reason"]
        for resource in template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    }


def test_wildcards_on_inputs_of_other_stacks_are_acknowledged_with_their_reasons(platform):
    created = _acknowledged(platform.template("CreatedInference"))
    cross_stack = [i for i in created if i.startswith("AwsSolutions-IAM5[Resource::CreatedBase:ExportsOutput")]
    assert any(i.endswith("/llama2-7b-neuron/*]") for i in cross_stack), sorted(created)
    assert any(i.endswith("/capture/*]") for i in cross_stack), sorted(created)
    imported = _acknowledged(platform.template("ImportedInference"))
    assert any("imported-team-models/llama2-7b-neuron/*]" in i for i in imported), sorted(imported)
    assert any("imported-team-data/capture/*]" in i for i in imported), sorted(imported)
    for prefix in VARIANTS:
        for capability in CAPABILITIES:
            for rule_id, reason in _acknowledged(platform.template(f"{prefix}{capability}")).items():
                assert len(reason) >= 20, (rule_id, reason)


def test_the_knowledge_base_joins_the_store_through_a_policy_in_its_own_stack(platform):
    for prefix in VARIANTS:
        agents, rag = platform.template(f"{prefix}Agents"), platform.template(f"{prefix}Rag")
        policies = [
            r["Properties"]
            for r in agents["Resources"].values()
            if r["Type"] == "AWS::OpenSearchServerless::AccessPolicy"
        ]
        assert len(policies) == 1 and policies[0]["Type"] == "data"
        assert "aoss:WriteDocument" in json.dumps(policies[0]["Policy"])
        assert "KnowledgeBaseRole" in json.dumps(policies[0]["Policy"])
        (kb,) = [r for r in agents["Resources"].values() if r["Type"] == "AWS::Bedrock::KnowledgeBase"]
        assert any(d.startswith("KnowledgeBase") for d in kb["DependsOn"])
        assert "KnowledgeBaseRole" not in json.dumps(rag)


def test_the_action_group_permission_lives_with_the_agent(platform):
    for prefix in VARIANTS:
        agents = platform.template(f"{prefix}Agents")
        agent_id = next(k for k, r in agents["Resources"].items() if r["Type"] == "AWS::Bedrock::Agent")
        (permission,) = [
            r["Properties"]
            for r in agents["Resources"].values()
            if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "bedrock.amazonaws.com"
        ]
        assert permission["SourceArn"] == {"Fn::GetAtt": [agent_id, "AgentArn"]}
        assert "Fn::ImportValue" in permission["FunctionName"]
        tools = platform.template(f"{prefix}Tools")
        assert not [r for r in tools["Resources"].values() if r["Type"] == "AWS::Lambda::Permission"]


def test_a_reader_in_another_stack_gets_its_rules_and_policies_in_its_own_stack(platform):
    for prefix in VARIANTS:
        tools, rag = platform.template(f"{prefix}Tools"), platform.template(f"{prefix}Rag")
        ingress = [r for r in tools["Resources"].values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
        assert len(ingress) == 2 and all(r["Properties"]["FromPort"] == 443 for r in ingress)
        access = [r for r in tools["Resources"].values() if r["Type"] == "AWS::OpenSearchServerless::AccessPolicy"]
        assert len(access) == 1 and "aoss:ReadDocument" in json.dumps(access[0]["Properties"]["Policy"])
        index = next(r for r in rag["Resources"].values() if r["Type"] == "Custom::OpenSearchVectorIndex")
        readers = json.dumps(index["Properties"]["ReaderRoleArns"])
        assert f"role/{prefix.lower()}-rag-reader" in readers and "ImportValue" not in readers


def _store_and_other_stack():
    from genai_cdk import VectorStore

    app = App()
    rag, other = Stack(app, "Rag", env=ENV), Stack(app, "Other", env=ENV)
    vpc = ec2.Vpc(rag, "Vpc", availability_zones=ZONES, nat_gateways=1)
    return VectorStore(rag, "Store", vpc=vpc), other, vpc


def test_a_managed_domain_refuses_a_generated_role_name_of_another_stack():
    store, other, _ = _store_and_other_stack()
    role = iam.Role(other, "Reader", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    with pytest.raises(ValueError, match=r"grantee='Other/Reader' is invalid: .*role_name=.*ServerlessDeployment"):
        store.grant_read(role)


@pytest.mark.parametrize("construct", ["IngestionPipeline", "RagApi"])
def test_a_managed_domain_refuses_a_pipeline_or_api_of_another_stack(construct):
    import genai_cdk

    store, other, vpc = _store_and_other_stack()
    embeddings = genai_cdk.EmbeddingModel.sagemaker("minilm", 384)
    with pytest.raises(ValueError, match=rf"vector_store='Rag/Store' is invalid: .*build {construct} in the Vector"):
        getattr(genai_cdk, construct)(other, "X", vector_store=store, vpc=vpc, embeddings=embeddings)
