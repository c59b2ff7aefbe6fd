"""``PreferenceCollection``: what a human ranking loop needs (Generative AI on AWS, chapter 7).

Labelers rank three responses to a prompt (drag and drop, best first, no ties); the rankings become
preference pairs for a reward model or DPO. The construct provisions:

- a bucket for tasks and results (KMS, TLS-only, versioned, access-logged, no public access);
- a private workforce and work team on Cognito: a user pool (strong passwords, MFA required, no self
  sign-up), a user group, an app client and a hosted domain (``AWS::SageMaker::Workforce`` and
  ``AWS::SageMaker::Workteam`` with a ``CognitoMemberDefinition``);
- the ranking task template as an ``AWS::SageMaker::HumanTaskUi`` (the Liquid/crowd-html template and the
  labeler instructions in ``assets/ranking/``);
- the role the human loop assumes: read the task prefix, write the output prefix, use the key.

CloudFormation has no resource for an A2I flow definition (``CreateFlowDefinition``): ``genai align label
start`` creates it at run time from this construct's outputs (README, "Alignment: PreferenceCollection").

A private workforce is one per account and Region: deploy one ``PreferenceCollection`` per account and
Region (more work teams can join its workforce later).
"""

from __future__ import annotations

import re
from importlib import resources

from aws_cdk import Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from ._validation import invalid
from .nag import allow
from .storage import prefer_bucket_policy_access_logs, secure_bucket

_NAME = re.compile(r"^[a-z0-9](-?[a-z0-9]){0,49}$")
_DOMAIN_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*/$")
_INSTRUCTIONS_MARKER = "<!-- genai:instructions -->"
_MAX_TEMPLATE = 128_000  # AWS::SageMaker::HumanTaskUi UiTemplate.Content maxLength


def ranking_template() -> str:
    """The ranking task template with the labeler instructions in place (what the HumanTaskUi holds)."""
    folder = resources.files("genai_cdk") / "assets" / "ranking"
    template = (folder / "template.liquid.html").read_text(encoding="utf-8")
    instructions = (folder / "instructions.html").read_text(encoding="utf-8")
    if _INSTRUCTIONS_MARKER not in template:
        raise RuntimeError(f"assets/ranking/template.liquid.html lost its {_INSTRUCTIONS_MARKER} marker")
    return template.replace(_INSTRUCTIONS_MARKER, instructions.strip())


class PreferenceCollection(Construct):
    """A private work team, the ranking UI, a bucket and a role for A2I human loops that rank responses.

    Minimal use::

        labeling = PreferenceCollection(self, "Preferences")

    then ``genai align label start --work-team <WorkteamArn> --ui <HumanTaskUiArn> --role <RoleArn>
    --output <OutputUri> ...`` with the stack's outputs.

    Escape hatches: ``key``, ``bucket``, ``user_pool``, ``user_group``, ``client``, ``domain``, ``workforce``,
    ``workteam``, ``task_ui``, ``role``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str = "genai-preferences",
        domain_prefix: str | None = None,
        tasks_prefix: str = "tasks/",
        output_prefix: str = "human-loops/",
        encryption_key: kms.IKey | None = None,
        notification_topic: sns.ITopic | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param name: names the workforce, work team and task UI (lower-case letters, digits and single
            hyphens, at most 50 characters); ``genai align label start`` names the flow definition after it.
        :param domain_prefix: the Cognito hosted-domain prefix (unique in the Region); default
            ``<name>-<account id>``.
        :param tasks_prefix: key prefix of task inputs in the bucket the loop role may read (default ``tasks/``).
        :param output_prefix: key prefix the human loops write their ``output.json`` under (default
            ``human-loops/``).
        :param encryption_key: KMS key of the bucket and the loop output; default a new key with rotation.
        :param notification_topic: an SNS topic the work team notifies of new tasks; default none.
        :param removal_policy: of the bucket and user pool (default RETAIN: labels are expensive to redo).
        """
        super().__init__(scope, construct_id)
        prefer_bucket_policy_access_logs(self)
        self.validate_props(name, domain_prefix, tasks_prefix, output_prefix)
        if removal_policy not in (RemovalPolicy.RETAIN, RemovalPolicy.DESTROY):
            raise invalid("removal_policy", removal_policy, "use RemovalPolicy.RETAIN or RemovalPolicy.DESTROY.")
        self.name = name
        self.tasks_prefix = tasks_prefix
        self.output_prefix = output_prefix

        self.key = encryption_key or kms.Key(
            self, "Key", enable_key_rotation=True, description=f"{self.node.path}: preference tasks and results"
        )
        self.bucket = secure_bucket(
            self, "Bucket", key=self.key, logs_prefix="preferences/", removal_policy=removal_policy
        )

        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=False,  # administrators invite labelers
            sign_in_aliases=cognito.SignInAliases(email=True, username=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
            removal_policy=removal_policy,
        )
        self.user_group = cognito.CfnUserPoolGroup(
            self,
            "Labelers",
            user_pool_id=self.user_pool.user_pool_id,
            group_name=f"{name}-labelers",
            description="Labelers who rank responses for preference data",
        )
        # SageMaker's labeling portal signs in through this client: it needs a secret and the OAuth code and
        # implicit flows; creating the workforce sets its callback URL to the portal.
        self.client = self.user_pool.add_client(
            "PortalClient",
            generate_secret=True,
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True, implicit_code_grant=True),
                scopes=[cognito.OAuthScope.EMAIL, cognito.OAuthScope.OPENID, cognito.OAuthScope.PROFILE],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
        )
        self.domain = self.user_pool.add_domain(
            "Domain",
            cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=domain_prefix or Fn.join("-", [name, Aws.ACCOUNT_ID])
            ),
        )

        self.workforce = sagemaker.CfnWorkforce(
            self,
            "Workforce",
            workforce_name=name,
            cognito_config=sagemaker.CfnWorkforce.CognitoConfigProperty(
                user_pool=self.user_pool.user_pool_id, client_id=self.client.user_pool_client_id
            ),
        )
        self.workteam = sagemaker.CfnWorkteam(
            self,
            "Workteam",
            workteam_name=name,
            workforce_name=name,
            description="Labelers who rank model responses (helpful, harmless, honest)",
            member_definitions=[
                sagemaker.CfnWorkteam.MemberDefinitionProperty(
                    cognito_member_definition=sagemaker.CfnWorkteam.CognitoMemberDefinitionProperty(
                        cognito_user_pool=self.user_pool.user_pool_id,
                        cognito_client_id=self.client.user_pool_client_id,
                        cognito_user_group=self.user_group.ref,
                    )
                )
            ],
            notification_configuration=sagemaker.CfnWorkteam.NotificationConfigurationProperty(
                notification_topic_arn=notification_topic.topic_arn
            )
            if notification_topic is not None
            else None,
        )
        self.workteam.add_resource_dependency(self.workforce)  # joins the workforce by name

        self.task_ui = sagemaker.CfnHumanTaskUi(
            self,
            "RankingUi",
            human_task_ui_name=f"{name}-ranking",
            ui_template=sagemaker.CfnHumanTaskUi.UiTemplateProperty(content=ranking_template()),
        )

        self.role = iam.Role(
            self,
            "HumanLoopRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Assumed by the A2I human loops that rank responses: task prefix in, output prefix out",
        )
        allow(
            self.role,
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.bucket.arn_for_objects(f"{tasks_prefix}*")]),
            "The human loop reads whichever task objects are put under the task prefix; they are not known in advance.",
        )
        allow(
            self.role,
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects(f"{output_prefix}*")]),
            "A2I writes each loop's output under <output prefix>/<flow definition>/<date>/<loop>/: names chosen "
            "at run time.",
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[self.key.key_arn])
        )

        portal = Fn.join("", ["https://", self.workforce.attr_sub_domain])
        self.portal_url = portal
        CfnOutput(self, "BucketName", value=self.bucket.bucket_name, description="Tasks and human-loop results")
        CfnOutput(
            self,
            "OutputUri",
            value=f"s3://{self.bucket.bucket_name}/{output_prefix}",
            description="--output of genai align label start",
        )
        CfnOutput(self, "KeyArn", value=self.key.key_arn, description="--kms-key of genai align label start")
        CfnOutput(self, "WorkteamArn", value=self.workteam.attr_workteam_arn, description="--work-team")
        CfnOutput(
            self, "HumanTaskUiArn", value=self.task_ui.attr_human_task_ui_arn, description="--ui: the ranking template"
        )
        CfnOutput(self, "RoleArn", value=self.role.role_arn, description="--role: the human loop's role")
        CfnOutput(self, "LabelingPortalUrl", value=portal, description="Where labelers work")
        CfnOutput(
            self,
            "CognitoSignInUrl",
            value=self.domain.sign_in_url(self.client, redirect_uri=Fn.join("", [portal, "/oauth2/idpresponse"])),
            description="The Cognito hosted sign-in page of the labeling portal",
        )

    @staticmethod
    def validate_props(name, domain_prefix, tasks_prefix, output_prefix) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise invalid(
                "name",
                name,
                "use 1-50 lower-case letters, digits and single hyphens, starting and ending with "
                "a letter or digit (it names the workforce, work team and task UI).",
            )
        if domain_prefix is not None:
            if not isinstance(domain_prefix, str) or not _DOMAIN_PREFIX.match(domain_prefix):
                raise invalid(
                    "domain_prefix",
                    domain_prefix,
                    "use 1-63 lower-case letters, digits and hyphens, not starting or ending with a hyphen.",
                )
            if any(word in domain_prefix for word in ("aws", "amazon", "cognito")):
                raise invalid(
                    "domain_prefix", domain_prefix, "Cognito refuses prefixes containing aws, amazon or cognito."
                )
        for prop, prefix in (("tasks_prefix", tasks_prefix), ("output_prefix", output_prefix)):
            if not isinstance(prefix, str) or len(prefix) > 200 or not _PREFIX.match(prefix):
                raise invalid(prop, prefix, "give a key prefix such as 'tasks/': no leading '/', ending with '/'.")
        if tasks_prefix.startswith(output_prefix) or output_prefix.startswith(tasks_prefix):
            raise invalid(
                "output_prefix",
                output_prefix,
                f"must not overlap tasks_prefix ({tasks_prefix!r}): the loop role may write only results.",
            )

    def grant_labeling(self, role: iam.IRole) -> None:
        """What ``genai align label start|status|fetch`` needs: the flow definition, the loops, the results."""
        stack = Stack.of(self)
        flow_definitions = stack.format_arn(
            service="sagemaker", resource="flow-definition", resource_name=f"{self.name}*"
        )
        allow(
            role,
            iam.PolicyStatement(
                actions=["sagemaker:CreateFlowDefinition", "sagemaker:DescribeFlowDefinition"],
                resources=[flow_definitions],
            ),
            "The CLI creates the flow definitions of this collection at run time (CloudFormation has no resource "
            "for them); they are named after it.",
        )
        allow(
            role,
            iam.PolicyStatement(
                actions=["sagemaker:StartHumanLoop", "sagemaker:DescribeHumanLoop", "sagemaker:ListHumanLoops"],
                resources=[
                    flow_definitions,
                    stack.format_arn(service="sagemaker", resource="human-loop", resource_name="*"),
                ],
            ),
            "Human loop names are derived from each prompt's content at run time; A2I checks the flow definition.",
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        allow(
            role,
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[self.bucket.arn_for_objects(f"{self.output_prefix}*")]
            ),
            "genai align label fetch downloads each completed loop's output.json, whose key A2I chooses.",
        )
        role.add_to_principal_policy(iam.PolicyStatement(actions=["kms:Decrypt"], resources=[self.key.key_arn]))
