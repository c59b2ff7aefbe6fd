"""Bedrock model ids (checked against their documented format), invoke grants, and Bedrock service roles.

Every construct prop that names a Bedrock model goes through :func:`parse_model_id`, so a typo fails at
synth with the prop, the value and the fix instead of deploying a role that can invoke nothing.

The format, from the Bedrock documentation:

- a base model id is ``provider.model-name-version[:revision[:variant]]``, e.g.
  ``anthropic.claude-3-haiku-20240307-v1:0``, ``amazon.titan-embed-text-v1``, ``openai.gpt-oss-120b-1:0``,
  ``cohere.embed-english-v3:0:512``. Bedrock API reference, ``InferenceProfileModel.modelArn`` (and
  ``AWS::Bedrock::ApplicationInferenceProfile`` ``ModelArn``): ``foundation-model/[a-z0-9-]{1,63}[.]{1}
  ([a-z0-9-]{1,63}[.]){0,2}[a-z0-9-]{1,63}([:][a-z0-9-]{1,63}){0,2}``. Here the revision is digits and
  the variant digits with an optional ``k`` (``:0:200k``), as every id of the catalogue below is.
- ``provider`` is one of :data:`PROVIDERS`: the providers of aws-cdk-lib's
  ``aws_bedrock.FoundationModelIdentifier`` catalogue (AWS-maintained; it cites the user guide's
  "Supported foundation models"), plus those the user guide's "models at a glance" lists that the
  catalogue does not have yet (google, moonshot/moonshotai, nvidia).
- a system-defined cross-Region inference profile id is the base id behind a geography prefix
  (``us.anthropic.claude-3-haiku-20240307-v1:0``), one of :data:`PROFILE_GEOGRAPHIES`: the
  ``CrossRegionInferenceProfileRegion`` values of the aws-bedrock-alpha construct library (global, us,
  us-gov, eu, apac, jp, au) and ``ca`` (Canada).
- where Bedrock takes an ARN, the ARN of a foundation model or of a system-defined inference profile
  (``arn:aws:bedrock:us-east-1::foundation-model/ID``, ``arn:aws:bedrock:us-east-1:123456789012:
  inference-profile/us.ID``).

On top of the shape: a model version dated ``-YYYYMMDD-vN`` carries its revision (every dated id of
the catalogue does: ``anthropic.claude-3-haiku-20240307-v1`` is ``...-v1:0``), and an id the catalogue
knows only with a revision is refused without one, naming the revisions it has.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from aws_cdk import ArnFormat, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk.region_info import RegionInfo
from constructs import Construct, IConstruct

from ._validation import invalid

PROVIDERS = (
    "ai21",
    "amazon",
    "anthropic",
    "cohere",
    "deepseek",
    "google",
    "luma",
    "meta",
    "minimax",
    "mistral",
    "moonshot",
    "moonshotai",
    "nvidia",
    "openai",
    "qwen",
    "stability",
    "twelvelabs",
    "writer",
    "zai",
)
# Geography prefix of a cross-Region inference profile -> the Regions (of aws-cdk-lib's region facts) its
# requests may be routed to; None: every commercial Region (global profiles).
PROFILE_GEOGRAPHIES: dict[str, tuple[str, tuple[str, ...]] | None] = {
    "global": None,
    "us": ("aws", ("us-",)),
    "us-gov": ("aws-us-gov", ("us-gov-",)),
    "eu": ("aws", ("eu-",)),
    "apac": ("aws", ("ap-", "me-")),
    "jp": ("aws", ("ap-northeast-1", "ap-northeast-3")),
    "au": ("aws", ("ap-southeast-2", "ap-southeast-4")),
    "ca": ("aws", ("ca-",)),
}
INVOKE_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")


@dataclass(frozen=True)
class EmbeddingOutput:
    """The vector sizes a Bedrock embedding model gives: ``default`` unless a request asks for another."""

    default: int
    dimensions: tuple[int, ...]


# Bedrock user guide, model parameters: Titan Text Embeddings V2 (1024 default, 512, 256), Titan Embeddings G1 -
# Text (1536), Cohere Embed v3 English and Multilingual (1024). Every pairing of one of these with a vector store
# is checked against it (KnowledgeBase, EmbeddingModel.bedrock -> IngestionPipeline / RagApi).
EMBEDDING_MODELS = {
    "amazon.titan-embed-text-v2:0": EmbeddingOutput(1024, (256, 512, 1024)),
    "amazon.titan-embed-text-v1": EmbeddingOutput(1536, (1536,)),
    "cohere.embed-english-v3": EmbeddingOutput(1024, (1024,)),
    "cohere.embed-multilingual-v3": EmbeddingOutput(1024, (1024,)),
}

_SEGMENT = r"[a-z0-9-]{1,63}"
_NAME = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT}){{0,2}}$")
_REVISIONS = re.compile(r"^[0-9]+(?::[0-9]+k?)?$")
_DATED_VERSION = re.compile(r"-\d{8}-v\d+$")
_ARN = re.compile(
    r"^arn:aws(?:-[a-z-]+)?:bedrock:(?P<region>[a-z0-9-]*):(?P<account>\d{12})?:(?P<kind>[a-z-]+)/(?P<id>.+)$"
)
EXAMPLE = "anthropic.claude-3-haiku-20240307-v1:0"


@dataclass(frozen=True)
class BedrockModelId:
    """A checked Bedrock model reference: a base model, a cross-Region inference profile, or their ARN."""

    value: str
    """As given: what the construct passes on to Bedrock."""
    base_model_id: str
    """``provider.model[:revision]``: the foundation model behind it."""
    geography: str | None = None
    """``us``, ``eu``, ``global``...: a system-defined cross-Region inference profile; None: the model itself."""
    arn: str | None = None

    @property
    def provider(self) -> str:
        return self.base_model_id.split(".", 1)[0]

    @property
    def profile_id(self) -> str | None:
        return f"{self.geography}.{self.base_model_id}" if self.geography else None


@functools.cache
def catalogue() -> frozenset[str]:
    """The model ids aws-cdk-lib's ``FoundationModelIdentifier`` knows (read once, when first needed)."""
    from aws_cdk import aws_bedrock as bedrock

    known = bedrock.FoundationModelIdentifier
    return frozenset(getattr(known, name).model_id for name in dir(known) if name.isupper())


def parse_model_id(prop: str, value: object, *, profiles: bool = True, arns: bool = False) -> BedrockModelId:
    """Check ``value`` as a Bedrock model id (``profiles``: or an inference profile id; ``arns``: or an ARN).

    Raises the house ``ValueError`` naming ``prop``, the value and the fix.
    """
    kinds = [f"a Bedrock model id (provider.model-name-version:revision, e.g. {EXAMPLE})"]
    if profiles:
        kinds.append(f"a cross-Region inference profile id (us.{EXAMPLE})")
    if arns:
        kinds.append("the ARN of " + ("either" if profiles else "the model"))
    accepted = ", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else kinds[0]
    if not isinstance(value, str) or not value or Token.is_unresolved(value):
        raise invalid(prop, value, f"give {accepted}.")
    if value.startswith("arn:"):
        return _parse_arn(prop, value, profiles=profiles, arns=arns, accepted=accepted)
    geography, rest = None, value
    head, _, tail = value.partition(".")
    if head in PROFILE_GEOGRAPHIES:
        if not profiles:
            raise invalid(
                prop,
                value,
                f"a cross-Region inference profile is not accepted here; give the base model id {tail!r} "
                "(this resource takes a foundation model in its own Region).",
            )
        geography, rest = head, tail
    _check_base(prop, value, rest, accepted, f"{geography}." if geography else "")
    return BedrockModelId(value, rest, geography)


def _parse_arn(prop: str, value: str, *, profiles: bool, arns: bool, accepted: str) -> BedrockModelId:
    if not arns:
        raise invalid(prop, value, f"give the model id, not an ARN: {accepted}.")
    match = _ARN.match(value)
    if match is None:
        raise invalid(prop, value, f"not a Bedrock ARN; give {accepted}.")
    kind, model_id = match["kind"], match["id"]
    if kind == "foundation-model" and not match["account"]:
        parsed = parse_model_id(prop, model_id, profiles=False)
        return BedrockModelId(value, parsed.base_model_id, None, value)
    if kind == "inference-profile" and match["account"] and profiles:
        parsed = parse_model_id(prop, model_id, profiles=True)
        if parsed.geography is None:
            raise invalid(prop, value, f"an inference-profile ARN ends in a profile id such as us.{EXAMPLE}.")
        return BedrockModelId(value, parsed.base_model_id, parsed.geography, value)
    raise invalid(
        prop,
        value,
        f"{kind} ARNs are not supported here (the construct grants invoke on a foundation model it knows); "
        f"give {accepted}.",
    )


def _check_base(prop: str, value: str, model_id: str, accepted: str, prefix: str) -> None:
    provider, dot, rest = model_id.partition(".")
    if not dot or not provider:
        raise invalid(prop, value, f"give {accepted}.")
    if provider not in PROVIDERS:
        if rest.partition(".")[0] in PROVIDERS and not prefix:  # a geography prefix, misspelt
            close = difflib.get_close_matches(provider, tuple(PROFILE_GEOGRAPHIES), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise invalid(
                prop,
                value,
                f"{provider!r} is not a cross-Region inference profile geography; {hint}"
                f"geographies: {', '.join(PROFILE_GEOGRAPHIES)}.",
            )
        close = difflib.get_close_matches(provider.lower(), PROVIDERS, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise invalid(
            prop, value, f"{provider!r} is not a Bedrock model provider; {hint}providers: {', '.join(PROVIDERS)}."
        )
    name, colon, revisions = rest.partition(":")
    if not _NAME.match(name) or (colon and not _REVISIONS.match(revisions)):
        raise invalid(
            prop,
            value,
            "the model part must be lower-case letters, digits, '-' and '.' (model-name-version), then an optional "
            f":revision of digits (and :context such as :200k), as in {EXAMPLE}.",
        )
    if colon:
        return
    if _DATED_VERSION.search(name):
        raise invalid(prop, value, f"a dated model version carries its revision: did you mean '{prefix}{model_id}:0'?")
    if model_id not in catalogue():
        revised = sorted(known for known in catalogue() if known.startswith(model_id + ":"))
        if revised:
            raise invalid(prop, value, f"this model id carries its revision: did you mean '{prefix}{revised[0]}'?")


def foundation_model_arn(stack: Stack, model_id: str, region: str | None = None) -> str:
    """The ARN of foundation model ``model_id`` (``provider.model[:revision]``) in ``region`` (default: the stack's)."""
    return stack.format_arn(
        service="bedrock",
        region=region,
        account="",
        resource="foundation-model",
        resource_name=model_id,
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


def profile_regions(geography: str) -> list[str] | None:
    """The Regions a ``geography`` inference profile may route to (aws-cdk-lib's region facts); None: all."""
    scope = PROFILE_GEOGRAPHIES[geography]
    if scope is None:
        return None
    partition, prefixes = scope
    return sorted(r.name for r in RegionInfo.regions if r.partition == partition and r.name.startswith(tuple(prefixes)))


def invoke_model_resources(stack: Stack, model: BedrockModelId) -> list[str]:
    """What ``bedrock:InvokeModel`` must allow for ``model``: the model, or the profile and where it routes.

    A cross-Region inference profile needs the profile (in the calling Region) and its foundation model in
    every Region the profile may route to (Bedrock user guide, "Geographic cross-Region inference": IAM
    policy requirements); a global profile, the foundation model in the calling Region and the global
    foundation-model ARN (no Region).
    """
    if model.geography is None:
        return [model.arn or foundation_model_arn(stack, model.base_model_id)]
    profile = model.arn or stack.format_arn(
        service="bedrock",
        resource="inference-profile",
        resource_name=model.profile_id,
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )
    regions = profile_regions(model.geography)
    if regions is None:
        models = [
            foundation_model_arn(stack, model.base_model_id),
            foundation_model_arn(stack, model.base_model_id, ""),
        ]
    else:
        models = [foundation_model_arn(stack, model.base_model_id, region) for region in regions]
    return [profile, *models]


def grant_invoke_model(
    grantee: iam.IGrantable, model: BedrockModelId, actions: Sequence[str] = ("bedrock:InvokeModel",)
) -> iam.Grant:
    """Let ``grantee`` invoke ``model`` (through its inference profile, where it is one), and nothing else."""
    resources = invoke_model_resources(Stack.of(cast(IConstruct, grantee)), model)  # grantees are constructs
    grant = iam.Grant.add_to_principal(grantee=grantee, actions=list(actions), resource_arns=resources)
    if model.geography is not None:  # Bedrock reads the profile to route the call
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["bedrock:GetInferenceProfile"], resource_arns=resources[:1]
        )
    return grant


def bedrock_service_role(scope: Construct, construct_id: str, resource_kind: str, description: str) -> iam.Role:
    """A role for Bedrock acting as one of this account's ``resource_kind`` (agent, knowledge-base...)."""
    stack = Stack.of(scope)
    source_arn = stack.format_arn(
        service="bedrock", resource=resource_kind, resource_name="*", arn_format=ArnFormat.SLASH_RESOURCE_NAME
    )
    return iam.Role(
        scope,
        construct_id,
        description=description,
        assumed_by=iam.ServicePrincipal(
            "bedrock.amazonaws.com",
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}, "ArnLike": {"aws:SourceArn": source_arn}},
        ),
    )
