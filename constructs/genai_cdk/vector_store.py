"""``VectorStore``: an OpenSearch k-NN index for RAG, on a managed domain or OpenSearch Serverless.

Managed domain (default): in the VPC's private subnets, KMS at rest, node-to-node encryption,
HTTPS only with TLS 1.2+ (PFS), fine-grained access control whose master user is an IAM role,
slow/error/audit logs in KMS-encrypted log groups, zone awareness and dedicated masters as
configured. The index (knn_vector of the embedding dimension, HNSW, faiss engine) is created by a
custom resource running as the master role, which also installs the hybrid search pipeline and
maps the IAM roles given to ``grant_read`` / ``grant_write`` to index-scoped reader/writer roles.

Serverless: a VECTORSEARCH collection encrypted with the customer-managed key, reachable only
through a VPC endpoint, a data-access policy listing exactly the granted roles (a role of another
stack gets a policy of its own in that stack), and the index as ``AWS::OpenSearchServerless::Index``.

Either way ``index_url`` (``https://ENDPOINT/INDEX``) is what ``genai_runtime.rag`` opens.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import jsii
from aws_cdk import (
    CfnResource,
    CustomResource,
    Duration,
    Fn,
    IStableAnyProducer,
    IStableStringProducer,
    Lazy,
    Names,
    RemovalPolicy,
    Stack,
    Token,
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchserverless as aoss
from aws_cdk import aws_opensearchservice as opensearch
from aws_cdk import custom_resources as cr
from constructs import Construct

from genai_contracts import names
from genai_contracts.vector_index import (
    BASE_METADATA_FIELDS,
    FIELD_NAME,
    METADATA_FIELD,
    METADATA_TYPES,
    SERVERLESS_METADATA_TYPES,
    SPACE_TYPES,
    VECTOR_FIELD,
    index_body,
)

from ._validation import invalid, require_int
from .functions import allow_logs_delivery, vpc_function
from .lambda_image import INDEX_HANDLER
from .nag import acknowledge, acknowledge_policy_wildcards, allow

_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_READ_HTTP = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"]
_WRITE_HTTP = [*_READ_HTTP, "es:ESHttpPut", "es:ESHttpDelete"]


@dataclass(frozen=True)
class DomainDeployment:
    """A managed OpenSearch domain. Dedicated masters: 0 (none) or an odd number from 3.

    :param data_nodes: data nodes, a multiple of ``availability_zones``; default 2.
    :param data_node_instance_type: default ``r6g.large.search``.
    :param master_nodes: dedicated master nodes: 0 (default), 3 or 5.
    :param master_node_instance_type: default ``m6g.large.search``.
    :param availability_zones: zones the nodes spread over (zone awareness from 2), 1-3; default 2.
    :param volume_size_gib: EBS storage per data node; default 100.
    """

    data_nodes: int = 2
    data_node_instance_type: str = "r6g.large.search"
    master_nodes: int = 0
    master_node_instance_type: str = "m6g.large.search"
    availability_zones: int = 2
    volume_size_gib: int = 100

    def validate(self) -> None:
        require_int("data_nodes", self.data_nodes, minimum=1, maximum=80)
        require_int("availability_zones", self.availability_zones, minimum=1, maximum=3)
        require_int("volume_size_gib", self.volume_size_gib, minimum=10, maximum=16384)
        require_int("master_nodes", self.master_nodes, minimum=0, maximum=5)
        if self.master_nodes and (self.master_nodes < 3 or self.master_nodes % 2 == 0):
            raise invalid("master_nodes", self.master_nodes, "use 0, 3 or 5: dedicated masters need an odd quorum.")
        if self.data_nodes % self.availability_zones:
            raise invalid(
                "data_nodes",
                self.data_nodes,
                f"use a multiple of availability_zones ({self.availability_zones}) so each zone holds "
                "the same number of nodes.",
            )
        for prop in ("data_node_instance_type", "master_node_instance_type"):
            value = getattr(self, prop)
            if not isinstance(value, str) or not value.endswith(".search"):
                raise invalid(prop, value, "use an OpenSearch instance type such as r6g.large.search.")


@dataclass(frozen=True)
class ServerlessDeployment:
    """An OpenSearch Serverless VECTORSEARCH collection; standby replicas double capacity for availability.

    :param standby_replicas: replicas in another zone for availability; default True (False halves the cost: dev, test).
    """

    standby_replicas: bool = True


@jsii.implements(IStableStringProducer)
class _DataAccessPolicy:
    """The Serverless data-access policy: exactly the granted roles, plus the deploying role to create the index."""

    def __init__(self, stack: Stack, index: str, readers, writers, deployer: bool = True) -> None:
        self.stack, self.index, self.readers, self.writers = stack, index, readers, writers
        self.deployer = deployer

    def produce(self, context=None) -> str:
        def rule(permissions: list[str], principals: list[str]) -> dict:
            return {
                "Rules": [{"ResourceType": "index", "Resource": [self.index], "Permission": permissions}],
                "Principal": principals,
            }

        document = []
        if self.readers.arns:
            document.append(rule(["aoss:ReadDocument", "aoss:DescribeIndex"], self.readers.produce()))
        if self.writers.arns:
            document.append(
                rule(
                    ["aoss:ReadDocument", "aoss:WriteDocument", "aoss:DescribeIndex", "aoss:UpdateIndex"],
                    self.writers.produce(),
                )
            )
        # CloudFormation creates the index with the deploying role's credentials: let that role in.
        deployer = self.deployer and getattr(self.stack.synthesizer, "cloud_formation_execution_role_arn", None)
        if deployer:
            document.append(rule(["aoss:CreateIndex", "aoss:DescribeIndex", "aoss:UpdateIndex"], [Fn.sub(deployer)]))
        return self.stack.to_json_string(document)


@jsii.implements(IStableAnyProducer)
class _Arns:
    """The role ARNs granted so far, resolved at synth time (grants may come after construction)."""

    def __init__(self) -> None:
        self.arns: list[str] = []

    def produce(self, context=None):
        return list(dict.fromkeys(self.arns))


class VectorStore(Construct):
    """An OpenSearch vector index for RAG, private, encrypted and logged by default.

    Minimal use::

        store = VectorStore(self, "Vectors", vpc=vpc)
        store.grant_write(ingest_function)
        store.grant_read(query_function)

    Escape hatches: ``domain`` or ``collection`` (and ``vpc_endpoint``), ``key``, ``security_group``,
    ``admin_role``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        dimension: int = 384,
        index_name: str = "documents",
        metadata_fields: Mapping[str, str] | None = None,
        space_type: str = "innerproduct",
        deployment: DomainDeployment | ServerlessDeployment | None = None,
        encryption_key: kms.IKey | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        index_function_code: lambda_.DockerImageCode | None = None,
    ) -> None:
        """
        :param vpc: the VPC whose private subnets hold the domain (or the Serverless VPC endpoint).
        :param dimension: the embedding model's vector size (all-MiniLM-L6-v2: 384; Titan v2: 1024).
        :param index_name: the k-NN index.
        :param metadata_fields: filterable metadata beyond source/chunk/page, e.g. ``{"year": "integer"}``.
        :param space_type: innerproduct (cosine on normalised vectors, the runtime's default), l2 or cosinesimil.
        :param deployment: ``DomainDeployment(...)`` (default) or ``ServerlessDeployment(...)``.
        :param encryption_key: KMS key for data at rest and logs; default a new rotated key.
        :param vpc_subnets: default private subnets with egress, one per availability zone used.
        :param removal_policy: RETAIN (default) keeps the domain/collection and its data on stack deletion.
        :param index_function_code: the custom resource's image; default built from the installed packages.
            It runs ``lambdas.opensearch_index.on_event``.
        """
        super().__init__(scope, construct_id)
        deployment = deployment if deployment is not None else DomainDeployment()
        self.validate_props(dimension, index_name, metadata_fields, space_type, deployment)
        self.dimension = dimension
        self.index_name = index_name
        self.metadata_fields = {**BASE_METADATA_FIELDS, **(metadata_fields or {})}
        self.space_type = space_type
        self.deployment = deployment
        self.key = encryption_key or kms.Key(
            self, "Key", enable_key_rotation=True, description=f"{self.node.path}: vector store data at rest and logs"
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            allow_all_outbound=False,
            description="OpenSearch vector store: HTTPS from granted clients",
        )
        self._readers, self._writers = _Arns(), _Arns()
        self._remote_access: dict[str, tuple[_Arns, _Arns, aoss.CfnAccessPolicy]] = {}
        self.domain: opensearch.Domain | None = None
        self.collection: aoss.CfnCollection | None = None
        if isinstance(deployment, DomainDeployment):
            subnets = self._subnets(vpc, vpc_subnets, deployment.availability_zones)
            self._build_domain(vpc, subnets, deployment, removal_policy, index_function_code)
        else:
            subnets = self._subnets(vpc, vpc_subnets, 1)
            self._build_serverless(vpc, subnets, deployment, removal_policy)

    @staticmethod
    def validate_props(dimension, index_name, metadata_fields, space_type, deployment) -> None:
        require_int("dimension", dimension, minimum=1, maximum=16000)
        if not isinstance(index_name, str) or not _INDEX_NAME.match(index_name):
            raise invalid("index_name", index_name, "use lowercase letters, digits, - and _ (at most 100).")
        for name, kind in (metadata_fields or {}).items():
            if not isinstance(name, str) or not FIELD_NAME.match(name):
                raise invalid("metadata_fields", name, "field names are identifiers: letters, digits and _.")
            if name in BASE_METADATA_FIELDS:
                raise invalid("metadata_fields", name, f"{name} is set by ingestion; choose another name.")
            if kind not in METADATA_TYPES:
                raise invalid(f"metadata_fields.{name}", kind, f"choose one of {', '.join(METADATA_TYPES)}.")
        if space_type not in SPACE_TYPES:
            raise invalid("space_type", space_type, f"choose one of {', '.join(SPACE_TYPES)}.")
        if isinstance(deployment, DomainDeployment):
            deployment.validate()
        elif isinstance(deployment, ServerlessDeployment):
            for name, kind in (metadata_fields or {}).items():
                if kind not in SERVERLESS_METADATA_TYPES:
                    raise invalid(
                        f"metadata_fields.{name}",
                        kind,
                        f"OpenSearch Serverless indexes created by CloudFormation take "
                        f"{' or '.join(SERVERLESS_METADATA_TYPES)} fields only.",
                    )
        else:
            raise invalid("deployment", deployment, "pass DomainDeployment(...) or ServerlessDeployment(...).")

    def _subnets(self, vpc: ec2.IVpc, selection: ec2.SubnetSelection | None, zones: int) -> list[ec2.ISubnet]:
        """One private subnet in each of ``zones`` availability zones."""
        chosen = vpc.select_subnets(
            **(selection._values if selection else {}) or {"subnet_type": ec2.SubnetType.PRIVATE_WITH_EGRESS}
        )
        by_zone: dict[str, ec2.ISubnet] = {}
        for subnet in chosen.subnets:
            by_zone.setdefault(subnet.availability_zone, subnet)
        if len(by_zone) < zones:
            raise invalid(
                "availability_zones",
                zones,
                f"the selected subnets span {len(by_zone)} zone(s) ({', '.join(sorted(by_zone)) or 'none'}); "
                "give a VPC with private subnets in as many zones, or lower availability_zones.",
            )
        return [by_zone[zone] for zone in sorted(by_zone)[:zones]]

    # ---- what clients use
    @property
    def endpoint(self) -> str:
        """The HTTPS host (no scheme) of the domain or the collection."""
        if self.domain is not None:
            return self.domain.domain_endpoint
        return self._collection_host

    @property
    def index_url(self) -> str:
        return f"https://{self.endpoint}/{self.index_name}"

    @property
    def serverless(self) -> bool:
        return self.collection is not None

    def allow_from(self, connectable: ec2.IConnectable) -> None:
        """Open HTTPS from ``connectable`` (a function's or instance's security groups).

        For a connectable of another stack both rules (its egress, the store's ingress) go into that
        stack, which references this one; the store's stack then never references the consumer's.
        """
        port, description = ec2.Port.tcp(443), "HTTPS to the vector store"
        if _in_other_stacks(self, connectable.connections.security_groups):
            connectable.connections.allow_to(self.security_group, port, description)
        else:
            self.security_group.connections.allow_from(connectable, port, description)

    def grant_read(self, grantee: iam.IGrantable) -> None:
        """Search the index (and nothing else); a connectable grantee also gets HTTPS access."""
        self._grant(grantee, write=False)

    def grant_write(self, grantee: iam.IGrantable) -> None:
        """Read, index and delete documents of the index."""
        self._grant(grantee, write=True)

    def _grant(self, grantee: iam.IGrantable, write: bool) -> None:
        role = cast(iam.IRole, grantee.grant_principal)  # a role: checked in _grant
        if not hasattr(role, "role_arn"):
            raise invalid("grantee", grantee, "grant to a role or to a construct with a role (e.g. a Lambda function).")
        remote = _in_other_stacks(self, [role])
        if self.domain is not None:
            mapped = self._mapped_role_arn(role) if remote else role.role_arn
            (self._writers if write else self._readers).arns.append(mapped)
        elif remote:
            readers, writers = self._remote_access_policy(role)
            (writers if write else readers).arns.append(role.role_arn)
        else:
            (self._writers if write else self._readers).arns.append(role.role_arn)
        if hasattr(grantee, "connections"):
            self.allow_from(cast(ec2.IConnectable, grantee))
        if self.domain is not None:
            arn = self.domain.domain_arn
            resources = [f"{arn}/{self.index_name}", f"{arn}/{self.index_name}/*"]
            if write:
                # Ingestion pages through a source's rows in a point in time: it is opened under the index's
                # path, but searched (POST /_search) and closed (DELETE /_search/point_in_time) at the root.
                resources += [f"{arn}/_bulk", f"{arn}/_search", f"{arn}/_search/point_in_time"]
            allow(
                role,
                iam.PolicyStatement(actions=_WRITE_HTTP if write else _READ_HTTP, resources=resources),
                "Scoped to this one index's REST paths (_search, _doc/ID...) and, for a writer, the bulk and "
                "point-in-time paths; the domain's fine-grained access control limits the role further to the "
                "index's reader or writer role.",
            )
        else:
            allow(
                role,
                iam.PolicyStatement(
                    actions=["aoss:APIAccessAll"], resources=[cast(aoss.CfnCollection, self.collection).attr_arn]
                ),
            )
        self.key.grant_decrypt(role)

    def access_policy_for(self, grantee: iam.IGrantable) -> aoss.CfnAccessPolicy | None:
        """The Serverless data-access policy naming ``grantee``'s role (None for a managed domain).

        The store's own for a role of its stack; for a role of another stack the one ``grant_*``
        created in that stack. Whatever uses the index as that role should depend on it.
        """
        if self.domain is not None:
            return None
        role = cast(iam.IRole, grantee.grant_principal)  # a role: checked in _grant
        remote = self._remote_access.get(role.node.path)
        return remote[2] if remote else self.access_policy

    def require_grantable_from(self, consumer: Construct, prop: str = "vector_store") -> None:
        """Raise where ``consumer``, which grants a role it creates itself, cannot use this store from its stack.

        A managed domain maps each granted role by ARN in this store's stack, so a role of another stack
        needs a fixed name (see ``_mapped_role_arn``), which a construct's own function role does not have.
        """
        if self.domain is not None and _in_other_stacks(self, [consumer]):
            raise invalid(
                prop,
                self.node.path,
                f"a managed-domain VectorStore maps the roles it grants to index-scoped OpenSearch roles in its own "
                f"stack ({Stack.of(self).stack_name}), and {consumer.node.path} creates its function's role in "
                f"another stack ({Stack.of(consumer).stack_name}): build {type(consumer).__name__} in the "
                "VectorStore's stack, or use deployment=ServerlessDeployment(), whose grants work across stacks.",
            )

    def _mapped_role_arn(self, role: iam.IRole) -> str:
        """The ARN of a role of another stack for the index's role mapping, without a reference to that stack.

        The index custom resource (in this stack) maps exactly the granted ARNs; a reference to a role
        of a stack that references this store would be a dependency cycle.
        """
        if not isinstance(role, iam.Role):
            return role.role_arn  # an imported role: its ARN is a literal (or pseudo-parameters), no reference
        cfn = cast(iam.CfnRole, role.node.default_child)
        name = cfn.role_name
        if name is None or Token.is_unresolved(name):
            raise invalid(
                "grantee",
                role.node.path,
                f"a managed-domain VectorStore maps each granted role to an index-scoped OpenSearch role in its own "
                f"stack ({Stack.of(self).stack_name}), so a role of another stack ({Stack.of(role).stack_name}) "
                "needs a fixed name: iam.Role(..., role_name='...'); or create the role in the VectorStore's stack "
                "(and pass it to the function), or use deployment=ServerlessDeployment(), whose grants work "
                "across stacks.",
            )
        path = (cfn.path or "/").strip("/")
        return Stack.of(self).format_arn(
            service="iam", region="", resource="role", resource_name=f"{path}/{name}" if path else name
        )

    def _remote_access_policy(self, role: iam.IRole) -> tuple[_Arns, _Arns]:
        """A data-access policy in the role's own stack, naming that role (Serverless allows several per index).

        The store's policy would reference the role and make the store's stack depend on the consumer's;
        this one needs only the collection's and index's names, which are literals.
        """
        key = role.node.path
        if key not in self._remote_access:
            readers, writers = _Arns(), _Arns()
            digest = hashlib.sha256(f"{self.node.path}|{key}".encode()).hexdigest()[:10]
            policy = aoss.CfnAccessPolicy(
                cast(Construct, role),
                f"{Names.unique_id(self)}DataAccess",
                name=f"{self.collection_name[:21]}-{digest}",
                type="data",
                description=f"{self.node.path}: access of {key}",
                policy=Lazy.string(
                    _DataAccessPolicy(
                        Stack.of(role), f"index/{self.collection_name}/{self.index_name}", readers, writers, False
                    )
                ),
            )
            self._remote_access[key] = (readers, writers, policy)
        readers, writers, _ = self._remote_access[key]
        return readers, writers

    # ---- managed domain
    def _build_domain(self, vpc, subnets, deployment: DomainDeployment, removal_policy, code) -> None:
        stack = Stack.of(self)
        self.admin_role = iam.Role(
            self,
            "AdminRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Fine-grained access master user: creates the index and roles",
        )
        allow_logs_delivery(self.key)
        log_groups = {
            name: logs.LogGroup(
                self,
                f"{name}Logs",
                encryption_key=self.key,
                retention=logs.RetentionDays.ONE_YEAR,
                removal_policy=RemovalPolicy.RETAIN,
            )
            for name in ("SlowSearch", "SlowIndex", "Application", "Audit")
        }
        # One resource policy for all four groups instead of the Domain's per-domain custom resource Lambda.
        logs.CfnResourcePolicy(
            self,
            "LogsDelivery",
            policy_name=Names.unique_resource_name(self, max_length=255),
            policy_document=stack.to_json_string(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "es.amazonaws.com"},
                            "Action": ["logs:PutLogEvents", "logs:CreateLogStream"],
                            "Resource": [group.log_group_arn for group in log_groups.values()],
                            "Condition": {"StringEquals": {"aws:SourceAccount": stack.account}},
                        }
                    ],
                }
            ),
        )
        dedicated = deployment.master_nodes > 0
        zones = deployment.availability_zones
        self.domain = opensearch.Domain(
            self,
            "Domain",
            version=opensearch.EngineVersion.OPENSEARCH_2_19,  # 2.19: the RRF score-ranker used by hybrid search
            vpc=vpc,
            vpc_subnets=[ec2.SubnetSelection(subnets=subnets)],
            security_groups=[self.security_group],
            capacity=opensearch.CapacityConfig(
                data_nodes=deployment.data_nodes,
                data_node_instance_type=deployment.data_node_instance_type,
                master_nodes=deployment.master_nodes if dedicated else None,
                master_node_instance_type=deployment.master_node_instance_type if dedicated else None,
                multi_az_with_standby_enabled=False,
            ),
            zone_awareness=opensearch.ZoneAwarenessConfig(
                enabled=zones > 1, availability_zone_count=zones if zones > 1 else None
            ),
            ebs=opensearch.EbsOptions(volume_size=deployment.volume_size_gib, volume_type=ec2.EbsDeviceVolumeType.GP3),
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True, kms_key=self.key),
            node_to_node_encryption=True,
            enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2_PFS,
            fine_grained_access_control=opensearch.AdvancedSecurityOptions(master_user_arn=self.admin_role.role_arn),
            logging=opensearch.LoggingOptions(
                slow_search_log_enabled=True,
                slow_search_log_group=log_groups["SlowSearch"],
                slow_index_log_enabled=True,
                slow_index_log_group=log_groups["SlowIndex"],
                app_log_enabled=True,
                app_log_group=log_groups["Application"],
                audit_log_enabled=True,
                audit_log_group=log_groups["Audit"],
            ),
            suppress_logs_resource_policy=True,
            enable_auto_software_update=True,
            removal_policy=removal_policy,
        )
        for rule in ("AwsSolutions-OS3", "AwsSolutions-OS5"):
            acknowledge(
                self.domain,
                rule,
                "The domain has no resource policy at all: it sits in private subnets behind a security group, "
                "only same-account IAM roles with identity policies scoped to the index reach it, every request "
                "is SigV4-signed, and fine-grained access control maps each role to an index-scoped role.",
            )
        if not dedicated:
            acknowledge(
                self.domain,
                "AwsSolutions-OS4",
                "Dedicated master nodes are off by configuration (a small, non-production domain); "
                "set master_nodes=3 for production.",
            )
        if zones == 1:
            acknowledge(
                self.domain,
                "AwsSolutions-OS7",
                "Zone awareness is off by configuration (one availability zone, a non-production domain); "
                "set availability_zones=2 or 3 for production.",
            )
        self.admin_role.node.add_dependency(self.security_group)
        allow(
            self.admin_role,
            iam.PolicyStatement(actions=_WRITE_HTTP, resources=[f"{self.domain.domain_arn}/*"]),
            "The fine-grained access master creates the index, the search pipeline and the security roles, "
            "whose REST paths (/INDEX, /_search/pipeline/..., /_plugins/_security/...) lie under the domain ARN.",
        )
        self._build_index_resource(vpc, subnets, code)

    def _build_index_resource(self, vpc, subnets, code) -> None:
        function = vpc_function(
            self,
            "IndexFunction",
            code=code,
            handler=INDEX_HANDLER,
            vpc=vpc,
            key=self.key,
            role=self.admin_role,
            environment={names.POWERTOOLS_SERVICE_NAME: names.OPENSEARCH_INDEX_SERVICE},
            timeout=Duration.minutes(5),
            memory_size=512,
            vpc_subnets=ec2.SubnetSelection(subnets=subnets),
        )
        self.allow_from(function)
        provider = cr.Provider(self, "IndexProvider", on_event_handler=function)
        framework = provider.node.find_child("framework-onEvent")
        cast(CfnResource, framework.node.default_child).add_metadata(
            "cfn-lint", {"config": {"ignore_checks": ["W3005"]}}
        )
        for policy in provider.node.find_all():
            if isinstance(policy, iam.CfnPolicy):
                acknowledge_policy_wildcards(
                    policy,
                    "The CDK provider framework may invoke every version of the "
                    "index function (its ARN with :*), and nothing else.",
                )
        for rule, reason in (
            (
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "The CDK provider framework's own function writes its logs with the AWS managed basic execution role.",
            ),
            ("AwsSolutions-L1", "The CDK provider framework pins its own function's runtime; aws-cdk-lib upgrades it."),
        ):
            acknowledge(provider, rule, reason)
        self.index_resource: CustomResource | aoss.CfnIndex = CustomResource(
            self,
            "Index",
            service_token=provider.service_token,
            resource_type="Custom::OpenSearchVectorIndex",
            properties={
                "Endpoint": cast(opensearch.Domain, self.domain).domain_endpoint,
                "IndexName": self.index_name,
                "Dimension": self.dimension,
                "SpaceType": self.space_type,
                "Engine": "faiss",
                "MetadataFields": {k: v for k, v in self.metadata_fields.items() if k not in BASE_METADATA_FIELDS},
                "Replicas": 1 if cast(DomainDeployment, self.deployment).data_nodes > 1 else 0,
                "ReaderRoleArns": Lazy.any(self._readers),
                "WriterRoleArns": Lazy.any(self._writers),
            },
        )

    # ---- serverless
    def _build_serverless(self, vpc, subnets, deployment: ServerlessDeployment, removal_policy) -> None:
        stack = Stack.of(self)
        # Collections and their policies share a name of at most 32 characters; the longest suffix is 5.
        name = re.sub(r"[^a-z0-9-]", "", Names.unique_resource_name(self, max_length=40, separator="-").lower())
        name = ("v" + name[-25:]).replace("--", "-")
        self.collection_name = name
        collection_rule = [{"ResourceType": "collection", "Resource": [f"collection/{name}"]}]

        def security_policy(construct_id: str, kind: str, document) -> aoss.CfnSecurityPolicy:
            return aoss.CfnSecurityPolicy(
                self, construct_id, name=f"{name}-{kind[:3]}", type=kind, policy=stack.to_json_string(document)
            )

        encryption = security_policy(
            "EncryptionPolicy",
            "encryption",
            {"Rules": collection_rule, "AWSOwnedKey": False, "KmsARN": self.key.key_arn},
        )
        self.vpc_endpoint = aoss.CfnVpcEndpoint(
            self,
            "VpcEndpoint",
            name=f"{name}-vpce"[:32],
            vpc_id=vpc.vpc_id,
            subnet_ids=[s.subnet_id for s in subnets],
            security_group_ids=[self.security_group.security_group_id],
        )
        network = security_policy(
            "NetworkPolicy",
            "network",
            [{"Rules": collection_rule, "AllowFromPublic": False, "SourceVPCEs": [self.vpc_endpoint.attr_id]}],
        )
        self.collection = aoss.CfnCollection(
            self,
            "Collection",
            name=name,
            type="VECTORSEARCH",
            standby_replicas="ENABLED" if deployment.standby_replicas else "DISABLED",
        )
        self.collection.node.add_dependency(encryption)
        self.collection.node.add_dependency(network)
        self.collection.apply_removal_policy(removal_policy)
        self._collection_host = _host_of(self.collection.attr_collection_endpoint)
        self.access_policy = aoss.CfnAccessPolicy(
            self,
            "DataAccessPolicy",
            name=f"{name}-data",
            type="data",
            policy=Lazy.string(
                _DataAccessPolicy(stack, f"index/{name}/{self.index_name}", self._readers, self._writers)
            ),
        )
        body = index_body(
            self.dimension,
            metadata_fields=self.metadata_fields,
            space_type=self.space_type,
            bedrock_metadata=True,  # a KnowledgeBase over this store writes it
        )
        self.index_resource = aoss.CfnIndex(
            self,
            "Index",
            collection_endpoint=self.collection.attr_collection_endpoint,
            index_name=self.index_name,
            **_serverless_index(body),
        )
        self.index_resource.node.add_dependency(self.access_policy)


def _serverless_index(body: dict) -> dict:
    """``index_body`` as ``AWS::OpenSearchServerless::Index`` settings and mappings.

    Serverless sets shards and replicas itself, and the resource has no object type: the fields of the
    metadata object are mapped by dotted names.
    """
    settings = body["settings"]["index"]
    properties = dict(body["mappings"]["properties"])
    vector, metadata = properties.pop(VECTOR_FIELD), properties.pop(METADATA_FIELD)["properties"]
    method = vector["method"]
    mapped = {
        VECTOR_FIELD: aoss.CfnIndex.PropertyMappingProperty(
            type=vector["type"],
            dimension=vector["dimension"],
            method=aoss.CfnIndex.MethodProperty(
                name=method["name"],
                engine=method["engine"],
                space_type=method["space_type"],
                parameters=aoss.CfnIndex.ParametersProperty(**method["parameters"]),
            ),
        ),
        **{name: aoss.CfnIndex.PropertyMappingProperty(**field) for name, field in properties.items()},
        **{
            f"{METADATA_FIELD}.{name}": aoss.CfnIndex.PropertyMappingProperty(**field)
            for name, field in sorted(metadata.items())
        },
    }
    return {
        "settings": aoss.CfnIndex.IndexSettingsProperty(
            index=aoss.CfnIndex.IndexProperty(
                knn=settings["knn"], knn_algo_param_ef_search=settings["knn.algo_param.ef_search"]
            )
        ),
        "mappings": aoss.CfnIndex.MappingsProperty(properties=mapped),
    }


def _in_other_stacks(scope: Construct, constructs) -> bool:
    """Whether any of ``constructs`` lives in another stack than ``scope``."""
    here = Stack.of(scope).node.path
    return any(Stack.of(c).node.path != here for c in constructs)


def _host_of(url: str) -> str:
    """``https://abc.region.aoss.amazonaws.com`` -> the host, as a CloudFormation expression."""
    return Fn.select(1, Fn.split("https://", url))
