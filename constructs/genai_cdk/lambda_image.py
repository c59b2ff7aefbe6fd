"""The Lambdas' container image (RAG and agents), built from this repository at deploy time.

One image (``containers/lambda/Dockerfile``) serves every function; each sets its own handler as
the image ``CMD``. The build context is the repository root, narrowed to what the Dockerfile copies,
so synth fingerprints a few hundred kilobytes, not the virtual environment.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import IgnoreMode
from aws_cdk import aws_lambda as lambda_

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = "containers/lambda/Dockerfile"
_BUILD_CONTEXT = ["*", "!containers/lambda", "!runtime/genai_runtime", "!lambdas", "**/__pycache__"]

INGEST_HANDLER = "lambdas.rag_ingest.handler"
QUERY_HANDLER = "lambdas.rag_query.handler"
INDEX_HANDLER = "lambdas.opensearch_index.on_event"
CLAIMS_HANDLER = "lambdas.claims_action_group.handler"
AGENT_API_HANDLER = "lambdas.agent_api.handler"


def lambda_image_code(handler: str) -> lambda_.DockerImageCode:
    """The image with ``handler`` as its command; raises where the repository is not at hand."""
    if not (REPOSITORY_ROOT / DOCKERFILE).is_file():
        raise ValueError(
            f"code=None is invalid here: genai_cdk is installed without its repository, so {DOCKERFILE} "
            "cannot be built; pass code=aws_lambda.DockerImageCode.from_ecr(...) with an image built from it."
        )
    return lambda_.DockerImageCode.from_image_asset(
        str(REPOSITORY_ROOT), file=DOCKERFILE, cmd=[handler], exclude=_BUILD_CONTEXT, ignore_mode=IgnoreMode.DOCKER
    )
