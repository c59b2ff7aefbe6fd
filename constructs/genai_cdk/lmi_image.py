"""The LMI (DJL Serving) container image: AWS Deep Learning Container or your own."""

from __future__ import annotations

import re
from typing import Literal, cast

from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk.region_info import FactName
from constructs import Construct

from ._validation import invalid, require_choice
from .nag import allow

Flavor = Literal["lmi", "neuronx"]

DLC_REPOSITORY = "djl-inference"
# Pinned, so a synth never changes the serving stack underneath a deployed endpoint; genai_cdk.lmi_engine
# holds the option keys of exactly these engines.
PINNED_TAGS: dict[str, str] = {
    # GPU: LMI 27.0.0 = DJL Serving 0.36.0 with vLLM 0.23.1 (aws/deep-learning-containers,
    # docs/src/data/djl-inference/0.36-lmi27.0.0-gpu.yml); the engine of shared/harness
    # (djl-serving branch 0.36.0-lmi27-dlc), which our formatter tests run.
    "lmi": "0.36.0-lmi27.0.0-cu130",
    # Inferentia2 / Trainium: the last LMI Neuron image, transformers-neuronx 0.12 on Neuron SDK 2.20.1.
    # DJL removed Neuron from LMI in 0.35.0 (djl-serving 1132e3a) and published no NxD Inference image;
    # djl-serving 0.34.0-dlc serving/docs/lmi/README.md lists this tag as the Neuron container.
    "neuronx": "0.30.0-neuronx-sdk2.20.1",
}


class LmiImage:
    """Resolve the LMI image per region, or bring your own."""

    def __init__(
        self,
        *,
        flavor: Flavor | None,
        tag: str | None = None,
        repository: ecr.IRepository | None = None,
        image_uri: str | None = None,
    ) -> None:
        self.flavor = flavor
        self._tag = tag
        self._repository = repository
        self._image_uri = image_uri

    @staticmethod
    def dlc(flavor: Flavor, tag: str | None = None) -> LmiImage:
        """The AWS Deep Learning Container for ``flavor`` at the pinned (or a given) tag."""
        require_choice("image.flavor", flavor, tuple(PINNED_TAGS))
        if tag is not None and (not tag or ":" in tag or "/" in tag):
            raise invalid("image.tag", tag, "give only the tag, e.g. '0.36.0-lmi27.0.0-cu130'.")
        return LmiImage(flavor=flavor, tag=tag or PINNED_TAGS[flavor])

    @staticmethod
    def from_ecr_repository(repository: ecr.IRepository, tag: str = "latest") -> LmiImage:
        """Your own image in an ECR repository of this account (e.g. an LMI image with extra code)."""
        return LmiImage(flavor=None, tag=tag, repository=repository)

    @staticmethod
    def from_image_uri(image_uri: str) -> LmiImage:
        """An ECR image by URI (any account); the execution role may pull from that one repository."""
        match = _ECR_URI.match(image_uri) if isinstance(image_uri, str) else None
        if match is None:
            raise invalid(
                "image",
                image_uri,
                "SageMaker pulls from ECR only: give ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG.",
            )
        return LmiImage(flavor=None, image_uri=image_uri)

    def bind(self, scope: Construct, role: iam.IRole) -> str:
        """Return the image URI for ``scope``'s stack and let ``role`` pull it."""
        stack = Stack.of(scope)
        if self._repository is not None:
            self._repository.grant_pull(role)
            return self._repository.repository_uri_for_tag(self._tag)
        if self._image_uri is not None:
            match = cast(re.Match[str], _ECR_URI.match(self._image_uri))  # checked in from_image_uri
            _grant_pull(
                role,
                stack.format_arn(
                    service="ecr",
                    account=match["account"],
                    region=match["region"],
                    resource="repository",
                    resource_name=match["repository"],
                ),
            )
            return self._image_uri
        # A literal for a region-bound stack, a CfnMapping for a region-agnostic one.
        account = stack.regional_fact(FactName.DLC_REPOSITORY_ACCOUNT)
        _grant_pull(
            role, stack.format_arn(service="ecr", account=account, resource="repository", resource_name=DLC_REPOSITORY)
        )
        return f"{account}.dkr.ecr.{stack.region}.{stack.url_suffix}/{DLC_REPOSITORY}:{self._tag}"


_ECR_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/"
    r"(?P<repository>[a-z0-9._/-]+)(:[\w.-]+|@sha256:[0-9a-f]{64})$"
)


def _grant_pull(role: iam.IRole, repository_arn: str) -> None:
    allow(
        role,
        iam.PolicyStatement(
            actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            resources=[repository_arn],
        ),
    )
    allow(
        role,
        iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
        "ecr:GetAuthorizationToken has no resource-level permissions; image pulls are scoped to one repository.",
    )
