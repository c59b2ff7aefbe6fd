"""``IngestionPipeline``: documents dropped into S3 are chunked, embedded and indexed.

S3 (KMS, TLS-only, versioned, access-logged) -> notifications for created and removed objects under
``documents_prefix`` -> SQS (KMS) with a dead-letter queue -> a Lambda in the VPC running
``lambdas.rag_ingest`` with partial batch responses -> the ``VectorStore``. A message SQS fails to
process ``max_receive_count`` times lands in the DLQ; a poison document is sent there at once with the
reason. An alarm fires on any message in the DLQ.

The function reads exactly the object version each notification names (``s3:GetObjectVersion``) and
records it with the event's sequencer, so late and concurrent deliveries cannot leave an older version
indexed; on an OpenSearch Serverless store it re-sends a notification to its own queue, delayed, to
reconcile what the collection's refresh interval hid (``sqs:SendMessage`` on that queue).

Another indexer on the same bucket (a ``KnowledgeBase``) must read a prefix disjoint from
``documents_prefix``: the two write different layouts, and one document indexed twice would answer
twice. ``KnowledgeBase`` checks it at synth time (``overlapping_prefix``).
"""

from __future__ import annotations

from typing import cast

from aws_cdk import CfnResource, Duration, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from genai_contracts import names
from genai_contracts.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE

from ._validation import invalid, require_int
from .functions import allow_logs_delivery, vpc_function
from .lambda_image import INGEST_HANDLER
from .nag import acknowledge, acknowledge_policy_wildcards, allow
from .notifications import encrypted_alarm_topic
from .rag_models import EmbeddingModel, require_fit
from .storage import prefer_bucket_policy_access_logs, secure_bucket
from .vector_store import VectorStore

FUNCTION_TIMEOUT = Duration.minutes(5)
_MAX_PREFIX = 512


def prefixes_overlap(first: str, second: str) -> bool:
    """Whether some key lies under both prefixes ("" is the whole bucket)."""
    return first.startswith(second) or second.startswith(first)


def overlapping_prefix(scope: Construct, bucket: s3.IBucket, prefix: str) -> str | None:
    """The ``documents_prefix`` of an ``IngestionPipeline`` of ``scope``'s app on ``bucket`` that ``prefix``
    overlaps, or None."""
    root = scope.node.root
    for found in root.node.find_all():
        if isinstance(found, IngestionPipeline) and _same_bucket(found.bucket, bucket):
            if prefixes_overlap(found.documents_prefix, prefix):
                return found.documents_prefix
    return None


def _same_bucket(first: s3.IBucket, second: s3.IBucket) -> bool:
    if first.node.path == second.node.path:
        return True
    names = (first.bucket_name, second.bucket_name)
    return not any(Token.is_unresolved(name) for name in names) and names[0] == names[1]


class IngestionPipeline(Construct):
    """S3 -> SQS -> Lambda -> OpenSearch, idempotent, with a dead-letter queue and its alarm.

    Minimal use::

        IngestionPipeline(self, "Ingest", vector_store=store, vpc=vpc,
                          embeddings=EmbeddingModel.sagemaker("minilm-embeddings"))

    Escape hatches: ``bucket``, ``queue``, ``dead_letter_queue``, ``function``, ``dead_letter_alarm``, ``key``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vector_store: VectorStore,
        vpc: ec2.IVpc,
        embeddings: EmbeddingModel,
        documents_prefix: str = "",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
        batch_size: int = 5,
        max_receive_count: int = 3,
        max_concurrency: int = 5,
        encryption_key: kms.IKey | None = None,
        alarm_topic: sns.ITopic | None = None,
        code: lambda_.DockerImageCode | None = None,
    ) -> None:
        """
        :param vector_store: where chunks are indexed (the function gets ``grant_write``).
        :param vpc: the function runs in its private subnets (the vector store is only reachable there).
        :param embeddings: ``EmbeddingModel.sagemaker(...)`` or ``.bedrock(...)``; its dimension must match the store's.
        :param documents_prefix: index only keys under this prefix (e.g. ``documents/``); default the whole
            bucket. Keep it disjoint from any other indexer's prefix on the bucket (a ``KnowledgeBase``).
        :param chunk_size: characters per passage, cut at headings first (default 1200, measured on a hard
            labelled set; the book used 512).
        :param chunk_overlap: characters shared by neighbouring passages of one section (default 150).
        :param batch_size: SQS messages per invocation.
        :param max_receive_count: deliveries before a failing message moves to the dead-letter queue.
        :param max_concurrency: concurrent invocations, to protect the embedding endpoint and the domain.
        :param encryption_key: KMS key for the bucket, queues, logs and topic; default the vector store's key.
        :param alarm_topic: where the dead-letter alarm notifies; default a new encrypted topic.
        :param code: the function image; default built from the installed packages.
            It runs ``lambdas.rag_ingest.handler``.
        """
        super().__init__(scope, construct_id)
        prefer_bucket_policy_access_logs(self)
        self.validate_props(
            vector_store, embeddings, chunk_size, chunk_overlap, batch_size, max_receive_count, max_concurrency
        )
        self.validate_prefix(documents_prefix)
        self.documents_prefix = documents_prefix
        vector_store.require_grantable_from(self)
        stack = Stack.of(self)
        self.key = encryption_key or vector_store.key
        allow_logs_delivery(self.key)
        self.bucket = secure_bucket(self, "Documents", key=self.key, logs_prefix="documents/")
        # Queues get a key of their own: S3 notifications add a key-policy statement naming the bucket,
        # and on the bucket's own key that would be a bucket -> key -> bucket cycle.
        self.queue_key = kms.Key(
            self, "QueueKey", enable_key_rotation=True, description=f"{self.node.path}: ingestion queues"
        )
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.queue_key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.queue_key,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(FUNCTION_TIMEOUT.to_seconds() * 6),  # AWS: 6x the function timeout
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=max_receive_count),
        )
        filters = [s3.NotificationKeyFilter(prefix=documents_prefix)] if documents_prefix else []
        for event in (s3.EventType.OBJECT_CREATED, s3.EventType.OBJECT_REMOVED):
            self.bucket.add_event_notification(event, s3n.SqsDestination(self.queue), *filters)
        notifications = self.bucket.node.try_find_child("Notifications")
        if notifications is not None:  # cfn-lint W3005: aws-cdk-lib's DependsOn the queue it also GetAtts
            cast(CfnResource, notifications.node.default_child).add_metadata(
                "cfn-lint", {"config": {"ignore_checks": ["W3005"]}}
            )
        self.function = vpc_function(
            self,
            "Function",
            code=code,
            handler=INGEST_HANDLER,
            vpc=vpc,
            key=self.key,
            timeout=FUNCTION_TIMEOUT,
            memory_size=2048,
            environment={
                names.INDEX_URL: vector_store.index_url,
                names.EMBEDDINGS: embeddings.spec,
                names.CHUNK_SIZE: str(chunk_size),
                names.CHUNK_OVERLAP: str(chunk_overlap),
                names.DEAD_LETTER_QUEUE_URL: self.dead_letter_queue.queue_url,
                names.INGEST_QUEUE_URL: self.queue.queue_url,
                names.POWERTOOLS_SERVICE_NAME: names.RAG_INGEST_SERVICE,
            },
        )
        self.function.add_event_source(
            sources.SqsEventSource(
                self.queue, batch_size=batch_size, report_batch_item_failures=True, max_concurrency=max_concurrency
            )
        )
        role = cast(iam.IRole, self.function.role)  # a Function always has one (it creates it)
        # HeadObject needs ListBucket (ListBucketVersions with a VersionId) to tell a deleted object (404) from a
        # forbidden one (403).
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:ListBucket", "s3:ListBucketVersions"], resources=[self.bucket.bucket_arn])
        )
        allow(
            role,
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[self.bucket.arn_for_objects(f"{documents_prefix}*")],
            ),
            "The function reads whichever document (and version) lands under its prefix: objects are not known "
            "in advance.",
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sqs:SendMessage"], resources=[self.dead_letter_queue.queue_arn, self.queue.queue_arn]
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[self.key.key_arn, self.queue_key.key_arn]
            )
        )
        vector_store.grant_write(self.function)
        embeddings.grant(self.function, stack)

        self.alarm_topic = alarm_topic or encrypted_alarm_topic(
            self, "AlarmTopic", self.key, f"{self.node.path}: ingestion failures"
        )
        self.dead_letter_alarm = cloudwatch.Alarm(
            self,
            "DeadLetterAlarm",
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Documents failed ingestion; each DLQ message carries the reason (attribute 'reason').",
        )
        self.dead_letter_alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
        self._acknowledge_notifications(stack)

    @staticmethod
    def validate_props(
        vector_store, embeddings, chunk_size, chunk_overlap, batch_size, max_receive_count, max_concurrency
    ) -> None:
        require_fit(vector_store, embeddings, "make VectorStore(dimension=...) match the model")
        require_int("chunk_size", chunk_size, minimum=1, maximum=100_000)
        require_int("chunk_overlap", chunk_overlap, minimum=0)
        if chunk_overlap >= chunk_size:
            raise invalid("chunk_overlap", chunk_overlap, f"must be below chunk_size ({chunk_size}).")
        require_int("batch_size", batch_size, minimum=1, maximum=10)
        require_int("max_receive_count", max_receive_count, minimum=1, maximum=1000)
        require_int("max_concurrency", max_concurrency, minimum=2, maximum=1000)

    @staticmethod
    def validate_prefix(documents_prefix) -> None:
        if not isinstance(documents_prefix, str) or len(documents_prefix) > _MAX_PREFIX:
            raise invalid(
                "documents_prefix", documents_prefix, f"give a key prefix of at most {_MAX_PREFIX} characters."
            )
        if documents_prefix.startswith("/") or any(ord(c) < 32 for c in documents_prefix):
            raise invalid(
                "documents_prefix", documents_prefix, "S3 keys do not start with / or hold control characters."
            )

    def _acknowledge_notifications(self, stack: Stack) -> None:
        """aws-cdk-lib's bucket-notifications handler is a stack-level singleton Lambda."""
        handler = next((c for c in stack.node.children if c.node.id.startswith("BucketNotificationsHandler")), None)
        if handler is None:
            return
        acknowledge(
            handler,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "aws-cdk-lib's bucket-notifications handler writes its own logs with the basic execution policy.",
        )
        for child in handler.node.find_all():
            # cfn-lint W3005 on aws-cdk-lib's own DependsOn its role
            if isinstance(child, CfnResource) and child.cfn_resource_type == "AWS::Lambda::Function":
                child.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        for policy in handler.node.find_all():
            if isinstance(policy, iam.CfnPolicy):
                acknowledge_policy_wildcards(
                    policy,
                    "aws-cdk-lib's bucket-notifications handler sets notification "
                    "configurations with PutBucketNotification on any bucket it is "
                    "asked to; CloudFormation calls it only for this stack's buckets.",
                )
