"""VectorStore, IngestionPipeline and RagApi: the shipped environments, the constructs alone, bad props."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from cdk_app.config import load_environment
from genai_cdk import (
    DomainDeployment,
    EmbeddingModel,
    IngestionPipeline,
    RagApi,
    ServerlessDeployment,
    TextGenerator,
    Throttle,
    VectorStore,
)
from genai_contracts.api_gateway import request_schema
from genai_contracts.api_requests import QueryRequest
from genai_contracts.vector_index import index_body

ENV = Environment(account="123456789012", region="us-east-1")
MINILM = EmbeddingModel.sagemaker("minilm", 384)


def _stack(zones=("us-east-1a", "us-east-1b")):
    stack = Stack(App(), "Rag", env=ENV)
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=list(zones), nat_gateways=1)
    return stack, vpc


def one(template: Template, kind: str) -> dict:
    resources = template.find_resources(kind)
    assert len(resources) == 1, f"{len(resources)} {kind}"
    return next(iter(resources.values()))["Properties"]


# ---- the shipped environments


def test_prod_domain_is_private_encrypted_zone_aware_with_dedicated_masters(synthesized):
    domain = one(synthesized.template("prod", "rag"), "AWS::OpenSearchService::Domain")
    cluster = domain["ClusterConfig"]
    assert cluster["InstanceCount"] == 6 and cluster["InstanceType"] == "r6g.xlarge.search"
    assert cluster["DedicatedMasterEnabled"] is True and cluster["DedicatedMasterCount"] == 3
    assert cluster["ZoneAwarenessEnabled"] is True and cluster["ZoneAwarenessConfig"]["AvailabilityZoneCount"] == 3
    assert len(domain["VPCOptions"]["SubnetIds"]) == 3
    assert domain["EncryptionAtRestOptions"]["Enabled"] is True and "KmsKeyId" in domain["EncryptionAtRestOptions"]
    assert domain["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert domain["DomainEndpointOptions"] == {
        "EnforceHTTPS": True,
        "TLSSecurityPolicy": "Policy-Min-TLS-1-2-PFS-2023-10",
    }
    assert domain["AdvancedSecurityOptions"]["Enabled"] is True
    assert "MasterUserARN" in domain["AdvancedSecurityOptions"]["MasterUserOptions"]
    assert domain["AdvancedSecurityOptions"]["InternalUserDatabaseEnabled"] is False
    assert set(domain["LogPublishingOptions"]) == {
        "SEARCH_SLOW_LOGS",
        "INDEX_SLOW_LOGS",
        "ES_APPLICATION_LOGS",
        "AUDIT_LOGS",
    }
    assert "AccessPolicies" not in domain  # identity policies only
    assert domain["EngineVersion"] == "OpenSearch_2.19"


def test_dev_domain_is_one_node_in_one_zone(synthesized):
    cluster = one(synthesized.template("dev", "rag"), "AWS::OpenSearchService::Domain")["ClusterConfig"]
    assert cluster["InstanceCount"] == 1 and cluster["DedicatedMasterEnabled"] is False
    assert cluster["ZoneAwarenessEnabled"] is False


def test_the_index_custom_resource_carries_the_mapping_inputs_and_the_granted_roles(synthesized):
    body = synthesized.body("prod", "rag")
    index = next(r for r in body["Resources"].values() if r["Type"] == "Custom::OpenSearchVectorIndex")["Properties"]
    assert index["IndexName"] == "documents" and index["Dimension"] == 384 and index["Engine"] == "faiss"
    assert index["MetadataFields"] == {"department": "keyword", "year": "integer"}
    assert len(index["ReaderRoleArns"]) == 1 and len(index["WriterRoleArns"]) == 1
    functions = {k: r for k, r in body["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    reader_role = index["ReaderRoleArns"][0]["Fn::GetAtt"][0]
    assert any(
        f["Properties"]["Role"] == {"Fn::GetAtt": [reader_role, "Arn"]}
        and f["Properties"]["ImageConfig"]["Command"] == ["lambdas.rag_query.handler"]
        for f in functions.values()
    )


def test_staging_runs_serverless_behind_a_vpc_endpoint_with_a_cmk(synthesized):
    template = synthesized.template("staging", "rag")
    collection = one(template, "AWS::OpenSearchServerless::Collection")
    assert collection["Type"] == "VECTORSEARCH"
    policies = {
        p["Properties"]["Type"]: p["Properties"]["Policy"]
        for p in template.find_resources("AWS::OpenSearchServerless::SecurityPolicy").values()
    }
    encryption = json.dumps(policies["encryption"])
    assert '\\"AWSOwnedKey\\":false' in encryption and "KmsARN" in encryption
    network = json.dumps(policies["network"])
    assert '\\"AllowFromPublic\\":false' in network and "SourceVPCEs" in network
    one(template, "AWS::OpenSearchServerless::VpcEndpoint")
    index = one(template, "AWS::OpenSearchServerless::Index")
    assert index["Mappings"]["Properties"]["vector_field"]["Dimension"] == 1024
    assert index["Mappings"]["Properties"]["metadata.source"] == {"Type": "keyword"}
    store = load_environment("staging").rag.vector_store  # the mapping is index_body's, with dotted metadata names
    mapping = index_body(store.dimension, metadata_fields=store.metadata_fields, bedrock_metadata=True)
    properties = mapping["mappings"]["properties"]
    assert {
        name.removeprefix("metadata."): field["Type"]
        for name, field in index["Mappings"]["Properties"].items()
        if name.startswith("metadata.")
    } == {name: field["type"] for name, field in properties["metadata"]["properties"].items()}
    assert index["Mappings"]["Properties"]["bedrock_metadata"] == {"Type": "text", "Index": False}
    access = json.dumps(one(template, "AWS::OpenSearchServerless::AccessPolicy")["Policy"])
    assert "aoss:WriteDocument" in access and "cfn-exec-role" in access


def test_ingestion_queue_has_a_dlq_with_an_alarm_and_the_function_reports_partial_failures(synthesized):
    template = synthesized.template("prod", "rag")
    queues = template.find_resources("AWS::SQS::Queue")
    assert len(queues) == 2 and all("KmsMasterKeyId" in q["Properties"] for q in queues.values())
    main = next(q for q in queues.values() if "RedrivePolicy" in q["Properties"])["Properties"]
    assert main["RedrivePolicy"]["maxReceiveCount"] == 3
    assert main["VisibilityTimeout"] == 1800
    mapping = one(template, "AWS::Lambda::EventSourceMapping")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 20}
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "ApproximateNumberOfMessagesVisible", "Threshold": 1, "AlarmActions": Match.any_value()},
    )
    notifications = one(template, "Custom::S3BucketNotifications")["NotificationConfiguration"]
    assert {q["Events"][0] for q in notifications["QueueConfigurations"]} == {
        "s3:ObjectCreated:*",
        "s3:ObjectRemoved:*",
    }


def test_ingest_function_environment_and_least_privilege(synthesized):
    body = synthesized.body("prod", "rag")
    function = next(
        r["Properties"]
        for r in body["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("ImageConfig", {}).get("Command") == ["lambdas.rag_ingest.handler"]
    )
    env = function["Environment"]["Variables"]
    assert env["EMBEDDINGS"] == "sagemaker:genai-minilm-embeddings-prod"
    assert env["CHUNK_SIZE"] == "1200" and env["CHUNK_OVERLAP"] == "150"  # genai_contracts.chunking
    assert "KmsKeyArn" in function and function["TracingConfig"] == {"Mode": "Active"}
    assert "VpcConfig" in function
    actions = set()
    for policy in (r for r in body["Resources"].values() if r["Type"] == "AWS::IAM::Policy"):
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            acts = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            actions.update(acts)
    assert not any(a == "*" or a.endswith(":*") for a in actions)


def test_query_api_is_iam_authorized_validated_throttled_logged_and_waf_protected_in_prod(synthesized):
    template = synthesized.template("prod", "rag")
    method = one(template, "AWS::ApiGateway::Method")
    assert method["HttpMethod"] == "POST" and method["AuthorizationType"] == "AWS_IAM"
    assert "RequestValidatorId" in method
    assert set(method["RequestModels"]) == {"application/json"}
    validator = one(template, "AWS::ApiGateway::RequestValidator")
    assert validator["ValidateRequestBody"] is True
    model = one(template, "AWS::ApiGateway::Model")
    assert model["Schema"] == request_schema(QueryRequest)  # the handler's own model, as draft 4
    assert model["Schema"]["required"] == ["question"] and model["Schema"]["additionalProperties"] is False
    stage = one(template, "AWS::ApiGateway::Stage")
    assert "AccessLogSetting" in stage and stage["TracingEnabled"] is True
    assert stage["MethodSettings"][0]["ThrottlingRateLimit"] == 200
    assert stage["MethodSettings"][0]["LoggingLevel"] == "INFO"
    plan = one(template, "AWS::ApiGateway::UsagePlan")
    assert plan["Throttle"] == {"BurstLimit": 400, "RateLimit": 200}
    acl = one(template, "AWS::WAFv2::WebACL")
    assert [r["Name"] for r in acl["Rules"]] == [
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "RateLimitPerIp",
    ]
    one(template, "AWS::WAFv2::WebACLAssociation")
    assert not synthesized.template("dev", "rag").find_resources("AWS::WAFv2::WebACL")


def test_prod_generates_with_the_inference_endpoint_and_staging_with_bedrock(synthesized):
    def query_function(env):
        body = synthesized.body(env, "rag")
        return next(
            r["Properties"]
            for r in body["Resources"].values()
            if r["Type"] == "AWS::Lambda::Function"
            and r["Properties"].get("ImageConfig", {}).get("Command") == ["lambdas.rag_query.handler"]
        )

    assert query_function("prod")["Environment"]["Variables"]["GENERATOR"].startswith("sagemaker:")
    staging = query_function("staging")["Environment"]["Variables"]
    assert staging["GENERATOR"] == "bedrock:anthropic.claude-3-haiku-20240307-v1:0"
    assert staging["EMBEDDINGS"] == "bedrock:amazon.titan-embed-text-v2:0"


def _function(body: dict, handler: str) -> dict:
    return next(
        r["Properties"]
        for r in body["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("ImageConfig", {}).get("Command") == [f"lambdas.{handler}.handler"]
    )


def test_each_deployment_defaults_queries_to_a_search_type_its_store_can_run(synthesized):
    # The documented minimal request {"question": "What is LoRA?"} names no search type: Serverless (staging)
    # cannot run hybrid; the managed domains' equal-weight RRF scores below vectors alone (measured).
    for env, expected in (("staging", "similarity"), ("prod", "similarity"), ("dev", "similarity")):
        variables = _function(synthesized.body(env, "rag"), "rag_query")["Environment"]["Variables"]
        assert variables["DEFAULT_SEARCH_TYPE"] == expected, env
    assert load_environment("staging").rag.default_search_type == "similarity"
    assert load_environment("staging").rag.vector_store.deployment == "serverless"


def _notification_prefixes(template: Template) -> set[str]:
    notifications = one(template, "Custom::S3BucketNotifications")["NotificationConfiguration"]
    prefixes = set()
    for queue in notifications["QueueConfigurations"]:
        rules = queue.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        prefixes |= {rule["Value"] for rule in rules if rule["Name"].lower() == "prefix"} or {""}
    return prefixes


def test_the_knowledge_base_and_the_ingestion_pipeline_never_read_the_same_objects(synthesized):
    from genai_cdk.ingestion_pipeline import prefixes_overlap

    for env in ("dev", "staging", "prod"):
        template = synthesized.template(env, "rag")
        ingested = _notification_prefixes(template)
        assert ingested == {"documents/"}, env
        for source in template.find_resources("AWS::Bedrock::DataSource").values():
            s3_config = source["Properties"]["DataSourceConfiguration"]["S3Configuration"]
            included = s3_config.get("InclusionPrefixes") or [""]
            assert included == ["knowledge-base/"]
            assert not any(prefixes_overlap(a, b) for a in ingested for b in included), env
    assert synthesized.template("staging", "rag").find_resources("AWS::Bedrock::DataSource")


def test_the_ingest_function_reads_exact_versions_under_its_prefix_and_reconciles_through_its_queue(synthesized):
    body = synthesized.body("staging", "rag")
    variables = _function(body, "rag_ingest")["Environment"]["Variables"]
    queues = {k for k, r in body["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
    main = next(k for k in queues if "RedrivePolicy" in body["Resources"][k]["Properties"])
    assert variables["INGEST_QUEUE_URL"] == {"Ref": main}
    statements = [
        statement
        for r in body["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    reads = next(s for s in statements if "s3:GetObjectVersion" in s["Action"])
    assert sorted(reads["Action"]) == ["s3:GetObject", "s3:GetObjectVersion"]
    assert json.dumps(reads["Resource"]).endswith('/documents/*"]]}')
    sends = next(s for s in statements if s["Action"] == "sqs:SendMessage")
    assert {json.dumps(r) for r in sends["Resource"]} >= {json.dumps({"Fn::GetAtt": [main, "Arn"]})}


# ---- the constructs alone


def test_minimal_domain_vector_store_grants_read_to_an_index_scoped_path():
    stack, vpc = _stack()
    store = VectorStore(stack, "Store", vpc=vpc)
    role = iam.Role(stack, "Reader", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    store.grant_read(role)
    body = Template.from_stack(stack).to_json()
    statements = [
        s
        for r in body["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        and r["Properties"]["Roles"] == [{"Ref": stack.get_logical_id(role.node.default_child)}]
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    http = next(s for s in statements if "es:ESHttpGet" in s["Action"])
    assert sorted(http["Action"]) == ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"]
    assert [json.dumps(r) for r in http["Resource"]][0].endswith('"/documents"]]}')
    assert store.index_url.startswith("https://")


def test_serverless_grants_are_api_access_on_the_collection_only():
    stack, vpc = _stack()
    store = VectorStore(stack, "Store", vpc=vpc, deployment=ServerlessDeployment(), dimension=1024)
    role = iam.Role(stack, "Writer", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    store.grant_write(role)
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "aoss:APIAccessAll",
                                "Resource": {"Fn::GetAtt": [Match.string_like_regexp("StoreCollection"), "Arn"]},
                            }
                        )
                    ]
                )
            }
        },
    )
    assert not template.find_resources("AWS::OpenSearchService::Domain")


def test_rag_api_with_cognito_uses_a_user_pool_authorizer():
    from aws_cdk import aws_cognito as cognito

    stack, vpc = _stack()
    store = VectorStore(stack, "Store", vpc=vpc)
    pool = cognito.UserPool(stack, "Users")
    RagApi(
        stack,
        "Api",
        vector_store=store,
        vpc=vpc,
        embeddings=MINILM,
        user_pool=pool,
        generator=TextGenerator.bedrock("anthropic.claude-3-haiku-20240307-v1:0"),
    )
    template = Template.from_stack(stack)
    assert one(template, "AWS::ApiGateway::Method")["AuthorizationType"] == "COGNITO_USER_POOLS"
    one(template, "AWS::ApiGateway::Authorizer")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda s, v: VectorStore(s, "S", vpc=v, dimension=0), "dimension=0 is invalid"),
        (lambda s, v: VectorStore(s, "S", vpc=v, index_name="Docs"), "index_name='Docs' is invalid"),
        (lambda s, v: VectorStore(s, "S", vpc=v, metadata_fields={"year": "int"}), "metadata_fields.year='int'"),
        (lambda s, v: VectorStore(s, "S", vpc=v, metadata_fields={"source": "keyword"}), "set by ingestion"),
        (lambda s, v: VectorStore(s, "S", vpc=v, space_type="dot"), "space_type='dot' is invalid"),
        (lambda s, v: VectorStore(s, "S", vpc=v, deployment=DomainDeployment(master_nodes=2)), "odd quorum"),
        (
            lambda s, v: VectorStore(s, "S", vpc=v, deployment=DomainDeployment(data_nodes=3)),
            "multiple of availability_zones",
        ),
        (
            lambda s, v: VectorStore(s, "S", vpc=v, deployment=DomainDeployment(availability_zones=3, data_nodes=3)),
            "span 2 zone",
        ),
        (
            lambda s, v: VectorStore(s, "S", vpc=v, deployment=DomainDeployment(data_node_instance_type="r6g.large")),
            "OpenSearch instance type",
        ),
        (
            lambda s, v: VectorStore(
                s, "S", vpc=v, deployment=ServerlessDeployment(), metadata_fields={"score": "float"}
            ),
            "keyword or integer fields only",
        ),
        (
            lambda s, v: IngestionPipeline(
                s, "I", vector_store=VectorStore(s, "S", vpc=v), vpc=v, embeddings=EmbeddingModel.bedrock()
            ),
            "1024-dimension vectors",
        ),
        (
            lambda s, v: IngestionPipeline(
                s,
                "I",
                vector_store=VectorStore(s, "S", vpc=v),
                vpc=v,
                embeddings=MINILM,
                chunk_size=100,
                chunk_overlap=100,
            ),
            "chunk_overlap=100 is invalid",
        ),
        (
            lambda s, v: IngestionPipeline(
                s, "I", vector_store=VectorStore(s, "S", vpc=v), vpc=v, embeddings=MINILM, batch_size=50
            ),
            "batch_size=50 is invalid",
        ),
        (
            lambda s, v: IngestionPipeline(s, "I", vector_store="search", vpc=v, embeddings=MINILM),
            "vector_store='search' is invalid",
        ),
        (
            lambda s, v: RagApi(
                s,
                "A",
                vector_store=VectorStore(s, "S", vpc=v),
                vpc=v,
                embeddings=MINILM,
                throttle=Throttle(rate_limit=0),
            ),
            "throttle.rate_limit=0 is invalid",
        ),
        (
            lambda s, v: RagApi(
                s, "A", vector_store=VectorStore(s, "S", vpc=v), vpc=v, embeddings=MINILM, generator="claude"
            ),
            "generator='claude' is invalid",
        ),
        (lambda s, v: EmbeddingModel.bedrock("titan"), "embeddings.model_id='titan' is invalid"),
        (
            lambda s, v: EmbeddingModel.bedrock("amazon.titan-embed-text-v2"),
            "embeddings.model_id='amazon.titan-embed-text-v2' is invalid: this model id carries its revision: "
            "did you mean 'amazon.titan-embed-text-v2:0'?",
        ),
        (
            lambda s, v: EmbeddingModel.bedrock("amazon.titan-embed-text-v2:0", dimension=512),
            "embeddings.dimension=512 is invalid: amazon.titan-embed-text-v2:0 gives 1024-dimension vectors as the "
            "RAG functions call it",
        ),
        (
            lambda s, v: EmbeddingModel.bedrock("amazon.titan-embed-text-v1", dimension=1024),
            "embeddings.dimension=1024 is invalid: amazon.titan-embed-text-v1 gives 1536-dimension vectors",
        ),
        (
            lambda s, v: EmbeddingModel.bedrock("cohere.embed-v4:0"),
            "embeddings.dimension=None is invalid: give the size of cohere.embed-v4:0's vectors",
        ),
        (lambda s, v: EmbeddingModel.sagemaker("minilm", dimension="384"), "embeddings.dimension='384' is invalid"),
        (lambda s, v: EmbeddingModel.sagemaker("minilm", dimension=0), "embeddings.dimension=0 is invalid"),
        (
            lambda s, v: TextGenerator.bedrock("anthropic.claude-3-haiku-20240307-v1"),
            "generator.model_id='anthropic.claude-3-haiku-20240307-v1' is invalid: a dated model version carries its "
            "revision: did you mean 'anthropic.claude-3-haiku-20240307-v1:0'?",
        ),
        (
            lambda s, v: TextGenerator.bedrock("antropic.claude-3-haiku-20240307-v1:0"),
            "'antropic' is not a Bedrock model provider; did you mean 'anthropic'?",
        ),
        (lambda s, v: EmbeddingModel.sagemaker("bad name!"), "embeddings.endpoint_name='bad name!' is invalid"),
        (lambda s, v: TextGenerator.lmi_endpoint("my-endpoint"), "pass an LmiEndpoint"),
    ],
)
def test_bad_props_are_refused_naming_the_prop(build, message):
    stack, vpc = _stack()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(stack, vpc)


def test_grant_invoke_on_a_cognito_authorized_rag_api_is_refused():
    from aws_cdk import aws_cognito as cognito

    stack, vpc = _stack()
    api = RagApi(
        stack,
        "Api",
        vector_store=VectorStore(stack, "Store", vpc=vpc),
        vpc=vpc,
        embeddings=MINILM,
        user_pool=cognito.UserPool(stack, "Users"),
    )
    client = iam.Role(stack, "Client", assumed_by=iam.AccountRootPrincipal())
    with pytest.raises(
        ValueError,
        match=r"grant_invoke='Rag/Client' is invalid: Rag/Api/Front authorizes with Cognito user pool tokens "
        r"\(user_pool=\), so API Gateway ignores IAM permissions; add the caller to the user pool .* or build the "
        r"API without user_pool= for IAM \(SigV4\) auth",
    ):
        api.grant_invoke(client)


def test_a_bedrock_generator_behind_an_inference_profile_is_granted_the_profile_and_its_models():
    stack, vpc = _stack()
    store = VectorStore(stack, "Store", vpc=vpc)
    RagApi(
        stack,
        "Api",
        vector_store=store,
        vpc=vpc,
        embeddings=MINILM,
        generator=TextGenerator.bedrock("eu.anthropic.claude-3-haiku-20240307-v1:0"),
    )
    statements = [
        statement
        for policy in Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "bedrock:InvokeModel"
    ]
    (invoke,) = statements
    flat = [json.dumps(r) for r in invoke["Resource"]]
    assert "inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0" in flat[0]
    assert {r.split(":bedrock:")[1].split(":")[0] for r in flat[1:]} >= {"eu-west-1", "eu-central-1"}
    assert not any(":us-" in r or "*" in r for r in flat[1:])


def test_a_bedrock_embedding_model_takes_its_dimension_from_the_model():
    assert EmbeddingModel.bedrock().dimension == 1024
    assert EmbeddingModel.bedrock("amazon.titan-embed-text-v1").dimension == 1536
    assert EmbeddingModel.bedrock("cohere.embed-v4:0", dimension=1536).dimension == 1536  # not in the table: as given


def test_a_knowledge_base_over_the_ingestion_bucket_needs_a_disjoint_prefix():
    from genai_cdk import KnowledgeBase

    def build(pipeline_prefix: str, kb_prefix: str) -> Stack:
        stack, vpc = _stack()
        store = VectorStore(stack, "Store", vpc=vpc, deployment=ServerlessDeployment(), dimension=1024)
        pipeline = IngestionPipeline(
            stack,
            "Ingest",
            vector_store=store,
            vpc=vpc,
            embeddings=EmbeddingModel.bedrock(),
            documents_prefix=pipeline_prefix,
        )
        KnowledgeBase(stack, "Kb", vector_store=store, documents=pipeline.bucket, documents_prefix=kb_prefix)
        return stack

    with pytest.raises(ValueError, match="documents_prefix='' is invalid: an IngestionPipeline indexes 'the whole"):
        build("", "")
    with pytest.raises(ValueError, match="documents_prefix='' is invalid: an IngestionPipeline indexes 'documents/'"):
        build("documents/", "")
    with pytest.raises(ValueError, match="documents_prefix='documents/a/' is invalid: an IngestionPipeline"):
        build("documents/", "documents/a/")
    template = Template.from_stack(build("documents/", "knowledge-base/"))
    assert _notification_prefixes(template) == {"documents/"}
    source = one(template, "AWS::Bedrock::DataSource")["DataSourceConfiguration"]["S3Configuration"]
    assert source["InclusionPrefixes"] == ["knowledge-base/"]
    with pytest.raises(ValueError, match="documents_prefix='/docs' is invalid"):
        IngestionPipeline.validate_prefix("/docs")


def test_a_serverless_rag_api_defaults_to_similarity_and_refuses_a_hybrid_default():
    stack, vpc = _stack()
    store = VectorStore(stack, "Store", vpc=vpc, deployment=ServerlessDeployment(), dimension=1024)
    api = RagApi(stack, "Api", vector_store=store, vpc=vpc, embeddings=EmbeddingModel.bedrock())
    assert api.default_search_type == "similarity"
    with pytest.raises(ValueError, match="default_search_type='hybrid' is invalid: OpenSearch Serverless has no"):
        RagApi(
            stack,
            "Hybrid",
            vector_store=store,
            vpc=vpc,
            embeddings=EmbeddingModel.bedrock(),
            default_search_type="hybrid",
        )
    with pytest.raises(ValueError, match="default_search_type='keyword' is invalid"):
        RagApi(
            stack,
            "Bad",
            vector_store=store,
            vpc=vpc,
            embeddings=EmbeddingModel.bedrock(),
            default_search_type="keyword",
        )


def test_the_config_refuses_a_hybrid_default_on_serverless(tmp_path):
    import shutil

    from cdk_app.config import ConfigError

    shutil.copy(
        __import__("cdk_app.environments", fromlist=["ENVIRONMENTS_DIR"]).ENVIRONMENTS_DIR / "staging.yaml",
        tmp_path / "staging.yaml",
    )
    path = tmp_path / "staging.yaml"
    path.write_text(path.read_text().replace("default_search_type: similarity", "default_search_type: hybrid"))
    with pytest.raises(ConfigError, match="default_search_type: hybrid needs a managed domain"):
        load_environment("staging", tmp_path)
