"""BedrockAgent, ClaimsActionGroup, AgentApi, KnowledgeBase and BedrockGovernance: environments, props."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk import App, Duration, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from genai_cdk import (
    ActionGroup,
    BedrockAgent,
    BedrockAlarms,
    BedrockGovernance,
    ClaimsActionGroup,
    DeniedTopic,
    GuardrailPolicy,
    KnowledgeBase,
    ServerlessDeployment,
    VectorStore,
)
from genai_cdk.bedrock_iam import PROFILE_GEOGRAPHIES, PROVIDERS, catalogue, parse_model_id
from genai_contracts.api_gateway import request_schema
from genai_contracts.api_requests import InvokeRequest

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
    schema = one(template, "AWS::ApiGateway::Model")["Schema"]
    assert schema == request_schema(InvokeRequest) and schema["required"] == ["inputText"]
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
    (logging,) = [
        r["Properties"] for r in body["Resources"].values() if r["Type"] == "Custom::BedrockInvocationLogging"
    ]
    config = json.dumps(logging["LoggingConfig"])
    assert "cloudWatchConfig" in config and "s3Config" in config and '\\"textDataDeliveryEnabled\\":true' in config
    assert logging["RemoveOnDelete"] == "false"  # deleting the stack leaves the account's logging on
    handlers = {
        r["Properties"].get("Handler") for r in body["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    }
    assert "bedrock_invocation_logging.on_event" in handlers
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
                s, "A", foundation_model="anthropic.claude-3-haiku-20240307-v1", instruction=INSTRUCTION
            ),
            "foundation_model='anthropic.claude-3-haiku-20240307-v1' is invalid: a dated model version carries "
            "its revision: did you mean 'anthropic.claude-3-haiku-20240307-v1:0'?",
        ),
        (
            lambda s, v: BedrockAgent(
                s, "A", foundation_model="antropic.claude-3-haiku-20240307-v1:0", instruction=INSTRUCTION
            ),
            "'antropic' is not a Bedrock model provider; did you mean 'anthropic'?",
        ),
        (
            lambda s, v: BedrockAgent(
                s, "A", foundation_model="usa.anthropic.claude-3-haiku-20240307-v1:0", instruction=INSTRUCTION
            ),
            "'usa' is not a cross-Region inference profile geography; did you mean 'us'?",
        ),
        (
            lambda s, v: BedrockAgent(
                s,
                "A",
                foundation_model="arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefgh1234",
                instruction=INSTRUCTION,
            ),
            "provisioned-model ARNs are not supported here",
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
        (
            lambda s, v: BedrockGovernance(s, "G", model_ids=["amazon.titan-embed-text-v2"]),
            "model_ids='amazon.titan-embed-text-v2' is invalid: this model id carries its revision: "
            "did you mean 'amazon.titan-embed-text-v2:0'?",
        ),
        (lambda s, v: BedrockGovernance(s, "G", model_ids=HAIKU), "give a list of model ids, not one string"),
        (
            lambda s, v: BedrockGovernance(s, "G", remove_logging_on_delete=True),
            "remove_logging_on_delete=True is invalid: only the owner of invocation logging can remove it",
        ),
        (
            lambda s, v: BedrockGovernance(s, "G", owns_invocation_logging="yes"),
            "owns_invocation_logging='yes' is invalid: give True or False",
        ),
        (
            lambda s, v: KnowledgeBase(
                s,
                "K",
                vector_store=VectorStore(s, "S", vpc=v, deployment=ServerlessDeployment(), dimension=1024),
                documents=ClaimsActionGroup(s, "C", vpc=v).table,
                embedding_model_id="us.amazon.titan-embed-text-v2:0",
            ),
            "embedding_model_id='us.amazon.titan-embed-text-v2:0' is invalid: a cross-Region inference profile is "
            "not accepted here",
        ),
        (
            lambda s, v: KnowledgeBase(
                s,
                "K",
                vector_store=VectorStore(s, "S", vpc=v, deployment=ServerlessDeployment(), dimension=1024),
                documents=ClaimsActionGroup(s, "C", vpc=v).table,
                embedding_model_id="amazon.titan-embed-text-v3:0",
            ),
            "embedding_model_id='amazon.titan-embed-text-v3:0' is invalid: choose one of",
        ),
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


# ---- model ids: one validator (genai_cdk.bedrock_iam.parse_model_id) behind every prop that names a model


def _policy_statements(template: Template) -> list[dict]:
    return [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_an_agent_on_a_cross_region_inference_profile_may_invoke_it_and_its_model_where_it_routes():
    stack, _ = _stack()
    BedrockAgent(stack, "A", foundation_model=f"us.{HAIKU}", instruction=INSTRUCTION)
    template = Template.from_stack(stack)
    assert one(template, "AWS::Bedrock::Agent")["FoundationModel"] == f"us.{HAIKU}"
    invoke = next(s for s in _policy_statements(template) if "bedrock:InvokeModel" in s["Action"])
    resources = [json.dumps(r) for r in invoke["Resource"]]
    assert f"inference-profile/us.{HAIKU}" in resources[0] and ":us-east-1:123456789012:" in resources[0]
    regions = sorted(r.split(":bedrock:")[1].split(":")[0] for r in resources[1:])
    assert regions == ["us-east-1", "us-east-2", "us-west-1", "us-west-2"]  # the US Regions, no wildcard
    assert all(f"::foundation-model/{HAIKU}" in r for r in resources[1:])
    profile = next(s for s in _policy_statements(template) if s["Action"] == "bedrock:GetInferenceProfile")
    assert "inference-profile" in json.dumps(profile["Resource"])


def test_a_global_profile_grants_the_regional_and_the_global_foundation_model_arn():
    stack, _ = _stack()
    BedrockAgent(stack, "A", foundation_model=f"global.{HAIKU}", instruction=INSTRUCTION)
    invoke = next(s for s in _policy_statements(Template.from_stack(stack)) if "bedrock:InvokeModel" in s["Action"])
    flat = json.dumps(invoke["Resource"])
    assert f":bedrock:us-east-1::foundation-model/{HAIKU}" in flat
    assert f':bedrock:::foundation-model/{HAIKU}"' in flat and "*" not in flat


def test_every_model_id_of_aws_cdk_libs_catalogue_is_accepted_bare_and_behind_each_geography():
    for model_id in sorted(catalogue()):
        assert parse_model_id("m", model_id).base_model_id == model_id
        for geography in PROFILE_GEOGRAPHIES:
            assert parse_model_id("m", f"{geography}.{model_id}").geography == geography


_SEGMENT = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@settings(deadline=None)  # the first call reads aws-cdk-lib's model catalogue
@given(
    provider=st.sampled_from(PROVIDERS),
    name=st.lists(_SEGMENT, min_size=1, max_size=3).map(".".join),
    revision=st.none()
    | st.integers(0, 9).map(str)
    | st.tuples(st.integers(0, 9), st.integers(1, 999)).map(lambda r: f"{r[0]}:{r[1]}k"),
    geography=st.none() | st.sampled_from(sorted(PROFILE_GEOGRAPHIES)),
)
def test_documented_shapes_are_accepted(provider, name, revision, geography):
    model_id = f"{provider}.{name}" + (f":{revision}" if revision else "")
    assume(not re.search(r"-\d{8}-v\d+$", name) or revision)  # a dated version needs its revision
    assume(revision or not any(known.startswith(model_id + ":") for known in catalogue()))
    value = f"{geography}.{model_id}" if geography else model_id
    parsed = parse_model_id("foundation_model", value)
    assert (parsed.base_model_id, parsed.geography) == (model_id, geography)


@settings(deadline=None)  # the first call reads aws-cdk-lib's model catalogue
@given(provider=st.from_regex(r"[a-z][a-z0-9-]{1,12}", fullmatch=True), model=_SEGMENT)
def test_an_unknown_provider_is_refused_naming_the_prop_and_the_providers(provider, model):
    assume(provider not in PROVIDERS and provider not in PROFILE_GEOGRAPHIES)
    with pytest.raises(ValueError, match=rf"^foundation_model='{re.escape(provider)}\.\S+' is invalid: .*provider"):
        parse_model_id("foundation_model", f"{provider}.{model}")


@settings(deadline=None)
@given(model_id=st.sampled_from(sorted(k.rsplit(":", 1)[0] for k in catalogue() if k.count(":") == 1)))
def test_a_catalogue_id_without_its_revision_is_refused_with_the_revised_id(model_id):
    assume(model_id not in catalogue())  # e.g. amazon.titan-embed-image-v1 exists bare and with :0
    with pytest.raises(ValueError, match=rf"did you mean '{re.escape(model_id)}:\d+'\?"):
        parse_model_id("embeddings.model_id", model_id)


@settings(deadline=None)  # the first call reads aws-cdk-lib's model catalogue
@given(junk=st.text(min_size=1, max_size=30))
def test_garbage_never_passes_silently(junk):
    try:
        parsed = parse_model_id("model_ids", junk)
    except ValueError as error:
        assert str(error).startswith(f"model_ids={junk!r} is invalid: ")
    else:
        assert parsed.provider in PROVIDERS


def test_agent_foundation_model_arns_are_accepted_and_granted_as_given():
    stack, _ = _stack()
    arn = f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"
    BedrockAgent(stack, "A", foundation_model=arn, instruction=INSTRUCTION)
    invoke = next(s for s in _policy_statements(Template.from_stack(stack)) if "bedrock:InvokeModel" in s["Action"])
    assert invoke["Resource"] == arn


# ---- knowledge bases: the embedding model's vectors fit the store


def test_a_knowledge_base_asks_bedrock_for_the_stores_dimension_when_it_is_not_the_models_default():
    from aws_cdk import aws_s3 as s3

    stack, vpc = _stack()
    store = VectorStore(stack, "S", vpc=vpc, deployment=ServerlessDeployment(), dimension=512)
    KnowledgeBase(stack, "K", vector_store=store, documents=s3.Bucket(stack, "Docs"))
    config = one(Template.from_stack(stack), "AWS::Bedrock::KnowledgeBase")["KnowledgeBaseConfiguration"]
    vector = config["VectorKnowledgeBaseConfiguration"]
    assert vector["EmbeddingModelConfiguration"] == {"BedrockEmbeddingModelConfiguration": {"Dimensions": 512}}


def test_a_knowledge_base_at_the_models_default_dimension_sets_no_embedding_configuration():
    from aws_cdk import aws_s3 as s3

    stack, vpc = _stack()
    store = VectorStore(stack, "S", vpc=vpc, deployment=ServerlessDeployment(), dimension=1024)
    KnowledgeBase(stack, "K", vector_store=store, documents=s3.Bucket(stack, "Docs"))
    config = one(Template.from_stack(stack), "AWS::Bedrock::KnowledgeBase")["KnowledgeBaseConfiguration"]
    assert "EmbeddingModelConfiguration" not in config["VectorKnowledgeBaseConfiguration"]


# ---- governance: one per account and Region, logging only when owned, delete keeps it unless asked


def test_governance_does_not_touch_invocation_logging_unless_it_owns_it():
    stack, _ = _stack()
    governance = BedrockGovernance(stack, "G", model_ids=[HAIKU])
    template = Template.from_stack(stack)
    assert not template.find_resources("Custom::BedrockInvocationLogging")
    assert governance.logging_configuration is None and governance.bucket is None
    assert template.find_resources("AWS::CloudWatch::Alarm")


def test_governance_removes_logging_on_delete_only_when_asked():
    stack, _ = _stack()
    BedrockGovernance(stack, "G", owns_invocation_logging=True, remove_logging_on_delete=True)
    logging = one(Template.from_stack(stack), "Custom::BedrockInvocationLogging")
    assert logging["RemoveOnDelete"] == "true"


@pytest.mark.parametrize(
    ("first_env", "second_env"),
    [
        (ENV, ENV),
        (ENV, None),  # an environment-agnostic stack may deploy to the same account and Region
    ],
)
def test_a_second_governance_for_the_same_account_and_region_is_refused_naming_the_first(first_env, second_env):
    app = App()
    BedrockGovernance(Stack(app, "One", env=first_env), "Governance", owns_invocation_logging=True)
    with pytest.raises(
        ValueError, match=r"BedrockGovernance='Two/Governance' is invalid: One/Governance already governs"
    ):
        BedrockGovernance(Stack(app, "Two", env=second_env), "Governance")


def test_governance_in_another_region_or_app_is_its_own():
    app = App()
    BedrockGovernance(Stack(app, "East", env=ENV), "Governance", owns_invocation_logging=True)
    BedrockGovernance(
        Stack(app, "West", env=Environment(account="123456789012", region="us-west-2")),
        "Governance",
        owns_invocation_logging=True,
    )
    BedrockGovernance(Stack(App(), "Other", env=ENV), "Governance", owns_invocation_logging=True)


# ---- AgentApi: grant_invoke means IAM auth


def test_grant_invoke_on_a_cognito_authorized_agent_api_is_refused():
    from aws_cdk import aws_cognito as cognito
    from aws_cdk import aws_iam as iam

    from genai_cdk import AgentApi

    stack, vpc = _stack()
    agent = BedrockAgent(stack, "A", foundation_model=HAIKU, instruction=INSTRUCTION)
    api = AgentApi(stack, "Api", agent=agent, vpc=vpc, user_pool=cognito.UserPool(stack, "Users"))
    client = iam.Role(stack, "Client", assumed_by=iam.AccountRootPrincipal())
    with pytest.raises(
        ValueError,
        match=r"grant_invoke='Agents/Client' is invalid: Agents/Api/Front authorizes with Cognito user pool tokens "
        r"\(user_pool=\), so API Gateway ignores IAM permissions; add the caller to the user pool",
    ):
        api.grant_invoke(client)
