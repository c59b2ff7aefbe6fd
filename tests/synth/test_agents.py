"""BedrockAgent, ClaimsActionGroup, AgentApi, KnowledgeBase and BedrockGovernance: environments, props."""

from __future__ import annotations

import json

import jsonschema
import pytest
from aws_cdk import App, Duration, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from genai_cdk import (
    ActionGroup,
    BedrockAgent,
    BedrockAlarms,
    BedrockGovernance,
    ClaimsActionGroup,
    DeniedTopic,
    GuardrailPolicy,
    KnowledgeBase,
    VectorStore,
)
from genai_cdk.agent_api import AGENT_REQUEST_SCHEMA

ENV = Environment(account="123456789012", region="us-east-1")
INSTRUCTION = "You are an insurance claims assistant: list open claims and send renewal reminders."
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def one(template: Template, kind: str) -> dict:
    found = template.find_resources(kind)
    assert len(found) == 1, f"{len(found)} {kind}"
    return next(iter(found.values()))["Properties"]


def statements(body: dict, role_logical_id: str) -> list[dict]:
    return [
        s
        for r in body["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_logical_id} in r["Properties"]["Roles"]
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_prod_agent_has_the_claims_action_group_a_guardrail_and_a_kms_key(synthesized):
    template = synthesized.template("prod", "agents")
    agent = one(template, "AWS::Bedrock::Agent")
    assert agent["FoundationModel"] == HAIKU and agent["IdleSessionTTLInSeconds"] == 900
    assert "CustomerEncryptionKeyArn" in agent and agent["AutoPrepare"] is True
    (group,) = agent["ActionGroups"]
    assert group["ActionGroupName"] == "ClaimManagementActionGroup"
    schema = json.loads(group["ApiSchema"]["Payload"])
    assert {op["operationId"] for path in schema["paths"].values() for op in path.values()} == {
        "getAllOpenClaims",
        "sendReminders",
    }
    assert "GuardrailIdentifier" in agent["GuardrailConfiguration"]
    one(template, "AWS::Bedrock::AgentAlias")
    guardrail = one(template, "AWS::Bedrock::Guardrail")
    filters = {f["Type"]: f for f in guardrail["ContentPolicyConfig"]["FiltersConfig"]}
    assert filters["HATE"]["InputStrength"] == "HIGH" and filters["PROMPT_ATTACK"]["OutputStrength"] == "NONE"
    assert guardrail["TopicPolicyConfig"]["TopicsConfig"][0]["Name"] == "InvestmentAdvice"
    assert {e["Action"] for e in guardrail["SensitiveInformationPolicyConfig"]["PiiEntitiesConfig"]} == {"ANONYMIZE"}


def test_agent_role_invokes_one_model_and_functions_answer_only_this_agent(synthesized):
    body = synthesized.body("prod", "agents")
    role_id = next(
        k
        for k, r in body["Resources"].items()
        if r["Type"] == "AWS::IAM::Role"
        and "bedrock.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
        and k.startswith("AgentRole")
    )
    invoke = next(s for s in statements(body, role_id) if "bedrock:InvokeModel" in s["Action"])
    assert json.dumps(invoke["Resource"]).endswith(f'foundation-model/{HAIKU}"]]}}')
    permission = next(
        r["Properties"]
        for r in body["Resources"].values()
        if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "bedrock.amazonaws.com"
    )
    agent_id = next(k for k, r in body["Resources"].items() if r["Type"] == "AWS::Bedrock::Agent")
    assert permission["SourceArn"] == {"Fn::GetAtt": [agent_id, "AgentArn"]}
    table = one(synthesized.template("prod", "agents"), "AWS::DynamoDB::Table")
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_agent_api_invokes_the_alias_behind_iam_and_a_request_model(synthesized):
    body = synthesized.body("prod", "agents")
    template = Template.from_json(body)
    method = one(template, "AWS::ApiGateway::Method")
    assert method["AuthorizationType"] == "AWS_IAM" and "RequestValidatorId" in method
    assert one(template, "AWS::ApiGateway::Model")["Schema"]["required"] == ["inputText"]
    one(template, "AWS::WAFv2::WebACL")
    grants = [
        s
        for r in body["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "bedrock:InvokeAgent"
    ]
    assert len(grants) == 1 and "AgentAliasArn" in json.dumps(grants[0]["Resource"])


def test_governance_logs_invocations_has_private_endpoints_and_alarms(synthesized):
    body = synthesized.body("prod", "agents")
    logging = next(r["Properties"] for r in body["Resources"].values() if r["Type"] == "Custom::AWS")
    create = json.dumps(logging["Create"])
    assert "putModelInvocationLoggingConfiguration" in create and "cloudWatchConfig" in create
    assert "deleteModelInvocationLoggingConfiguration" in json.dumps(logging["Delete"])
    endpoints = [r["Properties"] for r in body["Resources"].values() if r["Type"] == "AWS::EC2::VPCEndpoint"]
    names = sorted(json.dumps(e["ServiceName"]) for e in endpoints)
    assert len(endpoints) == 2 and "bedrock-agent-runtime" in names[0] and "bedrock-runtime" in names[1]
    assert all(e["PrivateDnsEnabled"] is True for e in endpoints)
    metrics = {
        r["Properties"]["MetricName"]
        for r in body["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == "AWS/Bedrock"
    }
    assert metrics == {
        "InvocationThrottles",
        "InvocationServerErrors",
        "InvocationClientErrors",
        "InvocationLatency",
        "Invocations",
        "InputTokenCount",
        "OutputTokenCount",
    }


def test_staging_agent_retrieves_from_a_knowledge_base_over_the_serverless_store(synthesized):
    rag = synthesized.template("staging", "rag")
    kb = one(rag, "AWS::Bedrock::KnowledgeBase")
    storage = kb["StorageConfiguration"]
    assert storage["Type"] == "OPENSEARCH_SERVERLESS"
    assert storage["OpensearchServerlessConfiguration"]["FieldMapping"] == {
        "VectorField": "vector_field",
        "TextField": "text",
        "MetadataField": "bedrock_metadata",
    }
    assert "amazon.titan-embed-text-v2:0" in json.dumps(kb["KnowledgeBaseConfiguration"])
    one(rag, "AWS::Bedrock::DataSource")
    agent = one(synthesized.template("staging", "agents"), "AWS::Bedrock::Agent")
    assert len(agent["KnowledgeBases"]) == 1
    access = json.dumps(one(rag, "AWS::OpenSearchServerless::AccessPolicy")["Policy"])
    assert "KnowledgeBaseRole" in access


@pytest.mark.parametrize(
    "payload",
    [
        {"inputText": "List open claims"},
        {"inputText": "hi", "sessionId": "session-1"},
        {},
        {"inputText": ""},
        {"inputText": "  "},
        {"inputText": 5},
        {"inputText": "hi", "sessionId": "a b"},
        {"inputText": "hi", "x": 1},
    ],
)
def test_the_gateway_model_and_the_handler_accept_and_refuse_the_same_requests(payload):
    from pydantic import ValidationError

    from lambdas.agent_api import InvokeRequest

    gateway = jsonschema.Draft4Validator(AGENT_REQUEST_SCHEMA).is_valid(payload)
    try:
        InvokeRequest.model_validate(payload)
        handler = True
    except ValidationError:
        handler = False
    assert gateway == handler


def _stack():
    stack = Stack(App(), "Agents", env=ENV)
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=["us-east-1a", "us-east-1b"], nat_gateways=1)
    return stack, vpc


def _function(stack):
    return lambda_.Function(
        stack,
        "Fn",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="x.handler",
        code=lambda_.Code.from_inline("def handler(e, c): pass"),
    )


SCHEMA = {"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {"/x": {"get": {"operationId": "x"}}}}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda s, v: BedrockAgent(s, "A", foundation_model="claude", instruction=INSTRUCTION), "foundation_model="),
        (
            lambda s, v: BedrockAgent(
                s, "A", foundation_model="us.anthropic.claude-3-haiku-20240307-v1:0", instruction=INSTRUCTION
            ),
            "inference profiles are not supported",
        ),
        (lambda s, v: BedrockAgent(s, "A", foundation_model=HAIKU, instruction="Be helpful."), "40-4000 characters"),
        (
            lambda s, v: BedrockAgent(
                s, "A", foundation_model=HAIKU, instruction=INSTRUCTION, idle_session_ttl=Duration.hours(2)
            ),
            "idle_session_ttl='7200 s' is invalid",
        ),
        (
            lambda s, v: BedrockAgent(
                s,
                "A",
                foundation_model=HAIKU,
                instruction=INSTRUCTION,
                action_groups=[ActionGroup("bad name", _function(s), SCHEMA)],
            ),
            "action_groups.name='bad name'",
        ),
        (
            lambda s, v: BedrockAgent(
                s,
                "A",
                foundation_model=HAIKU,
                instruction=INSTRUCTION,
                action_groups=[ActionGroup("g", _function(s), {"swagger": "2.0"})],
            ),
            "an OpenAPI 3 document",
        ),
        (
            lambda s, v: BedrockAgent(
                s,
                "A",
                foundation_model=HAIKU,
                instruction=INSTRUCTION,
                action_groups=[ActionGroup("g", _function(s), SCHEMA)] * 2,
            ),
            "must be unique",
        ),
        (
            lambda s, v: BedrockAgent(
                s,
                "A",
                foundation_model=HAIKU,
                instruction=INSTRUCTION,
                guardrail=GuardrailPolicy(content_filter_strength="EXTREME"),
            ),
            "content_filter_strength='EXTREME'",
        ),
        (
            lambda s, v: BedrockAgent(
                s,
                "A",
                foundation_model=HAIKU,
                instruction=INSTRUCTION,
                guardrail=GuardrailPolicy(denied_topics=(DeniedTopic("x", "d" * 300),)),
            ),
            "at most 200 characters",
        ),
        (
            lambda s, v: KnowledgeBase(
                s, "K", vector_store=VectorStore(s, "S", vpc=v), documents=ClaimsActionGroup(s, "C", vpc=v).table
            ),
            "OpenSearch Serverless",
        ),
        (lambda s, v: BedrockGovernance(s, "G", model_ids=["gpt-4"]), "model_ids='gpt-4' is invalid"),
        (lambda s, v: BedrockGovernance(s, "G", alarms=BedrockAlarms(throttles=0)), "alarms.throttles=0 is invalid"),
    ],
)
def test_bad_props_are_refused_naming_the_prop(build, message):
    stack, vpc = _stack()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(stack, vpc)


def test_a_knowledge_base_refuses_an_embedding_model_of_another_dimension():
    from aws_cdk import aws_s3 as s3

    from genai_cdk import ServerlessDeployment

    stack, vpc = _stack()
    store = VectorStore(stack, "S", vpc=vpc, deployment=ServerlessDeployment(), dimension=384)
    with pytest.raises(ValueError, match=r"embeds into \(256, 512, 1024\) dimensions but the vector store holds 384"):
        KnowledgeBase(stack, "K", vector_store=store, documents=s3.Bucket(stack, "Docs"))
