"""PreferenceCollection: the bucket, the Cognito work team, the ranking UI, the loop role, outputs, nag, lint, props."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Environment, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from cdk_app.demo import lint_template
from genai_cdk import PreferenceCollection
from genai_cdk.preference_collection import ranking_template

ENV = Environment(account="123456789012", region="us-east-1")


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    """One app: the construct with an operator role granted, synthesized with cdk-nag (errors fail the synth)."""
    outdir = tmp_path_factory.mktemp("preferences")
    app = App(outdir=str(outdir))
    stack = Stack(app, "Preferences", env=ENV)
    collection = PreferenceCollection(
        stack,
        "Labeling",
        notification_topic=sns.Topic.from_topic_arn(stack, "Tasks", f"arn:aws:sns:us-east-1:{ENV.account}:tasks"),
    )
    operator = iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
    collection.grant_labeling(operator)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()  # raises on any unacknowledged cdk-nag error
    path = outdir / "Preferences.template.json"
    return collection, Template.from_json(json.loads(path.read_text())), path


def _one(template: Template, kind: str) -> tuple[str, dict]:
    found = template.find_resources(kind)
    assert len(found) == 1, f"{len(found)} {kind}"
    logical, resource = next(iter(found.items()))
    return logical, resource["Properties"]


def _statements(template: Template, role_logical: str) -> list[dict]:
    return [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_logical} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _role_logical(template: Template, principal: str) -> str:
    for logical, role in template.find_resources("AWS::IAM::Role").items():
        if json.dumps(principal) in json.dumps(role["Properties"]["AssumeRolePolicyDocument"]):
            return logical
    raise AssertionError(f"no role assumed by {principal}")


def test_bucket_is_encrypted_with_the_key_tls_only_versioned_logged_private(synthesized):
    _, template, _ = synthesized
    key, _ = _one(template, "AWS::KMS::Key")
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "ServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": {"Fn::GetAtt": [key, "Arn"]},
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "preferences/"}),
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_work_team_is_a_cognito_group_of_a_strict_user_pool(synthesized):
    _, template, _ = synthesized
    pool, pool_props = _one(template, "AWS::Cognito::UserPool")
    client, client_props = _one(template, "AWS::Cognito::UserPoolClient")
    group, group_props = _one(template, "AWS::Cognito::UserPoolGroup")
    _one(template, "AWS::Cognito::UserPoolDomain")
    assert pool_props["MfaConfiguration"] == "ON" and pool_props["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert pool_props["Policies"]["PasswordPolicy"] == {
        "MinimumLength": 14,
        "RequireLowercase": True,
        "RequireNumbers": True,
        "RequireSymbols": True,
        "RequireUppercase": True,
        "TemporaryPasswordValidityDays": 3,
    }
    assert pool_props["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    assert pool_props["UserPoolAddOns"] == {"AdvancedSecurityMode": "ENFORCED"}
    assert client_props["GenerateSecret"] is True
    assert set(client_props["AllowedOAuthFlows"]) == {"code", "implicit"}
    assert group_props["GroupName"] == "genai-preferences-labelers"
    workforce, workforce_props = _one(template, "AWS::SageMaker::Workforce")
    assert workforce_props["CognitoConfig"] == {"UserPool": {"Ref": pool}, "ClientId": {"Ref": client}}
    template.has_resource(
        "AWS::SageMaker::Workteam",
        {
            "Properties": {
                "WorkteamName": "genai-preferences",
                "WorkforceName": workforce_props["WorkforceName"],
                "Description": Match.any_value(),
                "MemberDefinitions": [
                    {
                        "CognitoMemberDefinition": {
                            "CognitoUserPool": {"Ref": pool},
                            "CognitoClientId": {"Ref": client},
                            "CognitoUserGroup": {"Ref": group},
                        }
                    }
                ],
                "NotificationConfiguration": {"NotificationTopicArn": "arn:aws:sns:us-east-1:123456789012:tasks"},
            },
            "DependsOn": [workforce],
        },
    )


def test_the_ranking_template_is_a_human_task_ui(synthesized):
    _, template, _ = synthesized
    _, ui = _one(template, "AWS::SageMaker::HumanTaskUi")
    assert ui["HumanTaskUiName"] == "genai-preferences-ranking"
    content = ui["UiTemplate"]["Content"]
    assert content == ranking_template() and len(content) < 128_000
    assert "https://assets.crowd.aws/crowd-html-elements.js" in content and "<crowd-form>" in content
    assert "{% for response in task.input.responses %}" in content and "{{ task.input.prompt | escape }}" in content
    assert 'name="rank-{{ forloop.index0 }}"' in content and 'draggable="true"' in content
    for word in ("Helpful", "Harmless", "Honest", "Ties are not allowed"):
        assert word in content
    assert "genai:instructions" not in content  # the instructions were put in place


def test_loop_role_reads_tasks_writes_output_uses_the_key_and_no_wildcard_action(synthesized):
    _, template, _ = synthesized
    role = _role_logical(template, "sagemaker.amazonaws.com")
    props = template.find_resources("AWS::IAM::Role")[role]["Properties"]
    assert "ManagedPolicyArns" not in props
    statements = _statements(template, role)
    bucket = next(
        k
        for k, r in template.find_resources("AWS::S3::Bucket").items()
        if "KMSMasterKeyID" in json.dumps(r["Properties"].get("BucketEncryption", {}))
    )
    key, _ = _one(template, "AWS::KMS::Key")

    def objects(prefix):
        return {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, f"/{prefix}*"]]}

    assert {(json.dumps(s["Action"]), json.dumps(s["Resource"])) for s in statements} == {
        (json.dumps("s3:GetObject"), json.dumps(objects("tasks/"))),
        (json.dumps("s3:PutObject"), json.dumps(objects("human-loops/"))),
        (json.dumps(["kms:Decrypt", "kms:GenerateDataKey"]), json.dumps({"Fn::GetAtt": [key, "Arn"]})),
    }
    for logical in template.find_resources("AWS::IAM::Role"):
        for statement in _statements(template, logical):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any("*" in action for action in actions), (logical, statement)


def test_grant_labeling_passes_only_the_loop_role_to_sagemaker(synthesized):
    _, template, _ = synthesized
    loop_role = _role_logical(template, "sagemaker.amazonaws.com")
    operator = next(k for k in template.find_resources("AWS::IAM::Role") if k.startswith("Operator"))
    statements = _statements(template, operator)
    passrole = next(s for s in statements if s["Action"] == "iam:PassRole")
    assert passrole["Resource"] == {"Fn::GetAtt": [loop_role, "Arn"]}
    assert passrole["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    actions = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert {"sagemaker:CreateFlowDefinition", "sagemaker:StartHumanLoop", "sagemaker:ListHumanLoops"} <= actions


def test_outputs_name_what_the_cli_needs(synthesized):
    _, template, _ = synthesized
    outputs = template.to_json()["Outputs"]
    names = {k.removeprefix("Labeling")[: -len("XXXXXXXX")]: v for k, v in outputs.items()}
    assert set(names) == {
        "BucketName",
        "OutputUri",
        "KeyArn",
        "WorkteamArn",
        "HumanTaskUiArn",
        "RoleArn",
        "LabelingPortalUrl",
        "CognitoSignInUrl",
    }
    assert "WorkteamArn" in json.dumps(names["WorkteamArn"]["Value"])
    assert "HumanTaskUiArn" in json.dumps(names["HumanTaskUiArn"]["Value"])
    sign_in = json.dumps(names["CognitoSignInUrl"]["Value"])
    assert ".auth.us-east-1.amazoncognito.com/login?client_id=" in sign_in and "/oauth2/idpresponse" in sign_in


def test_cfn_lint_finds_nothing(synthesized):
    _, _, path = synthesized
    errors, warnings = lint_template(path)
    assert errors == [] and warnings == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Genai_Prefs"}, "name='Genai_Prefs' is invalid: use 1-50 lower-case"),
        ({"name": "a" * 51}, "is invalid: use 1-50"),
        ({"domain_prefix": "-labels"}, "domain_prefix='-labels' is invalid"),
        ({"domain_prefix": "my-aws-labels"}, "refuses prefixes containing aws"),
        ({"tasks_prefix": "/tasks/"}, "tasks_prefix='/tasks/' is invalid: give a key prefix"),
        ({"output_prefix": "out"}, "output_prefix='out' is invalid: give a key prefix"),
        ({"tasks_prefix": "data/", "output_prefix": "data/out/"}, "must not overlap tasks_prefix"),
        ({"removal_policy": RemovalPolicy.SNAPSHOT}, "removal_policy=.* use RemovalPolicy.RETAIN or"),
    ],
)
def test_bad_props(kwargs, message):
    stack = Stack(App(), "Bad", env=ENV)
    with pytest.raises(ValueError, match=message):
        PreferenceCollection(stack, "Labeling", **kwargs)


def test_a_development_collection_can_be_destroyed():
    stack = Stack(App(), "Dev", env=ENV)
    PreferenceCollection(
        stack, "Labeling", name="dev-prefs", domain_prefix="dev-prefs-labels", removal_policy=RemovalPolicy.DESTROY
    )
    template = Template.from_stack(stack)
    pool = template.find_resources("AWS::Cognito::UserPool")
    assert [r["Properties"]["DeletionProtection"] for r in pool.values()] == ["INACTIVE"]
    template.has_resource_properties("AWS::Cognito::UserPoolDomain", {"Domain": "dev-prefs-labels"})
    template.has_resource_properties("AWS::SageMaker::HumanTaskUi", {"HumanTaskUiName": "dev-prefs-ranking"})
