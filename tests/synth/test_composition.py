"""A user's own app: a fresh App and Stack outside cdk_app/, the public import only, nag-clean."""

from __future__ import annotations

import json

from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks


def test_lmi_endpoint_composes_in_a_users_own_app(tmp_path):
    from genai_cdk import LmiEndpoint, ModelArtifact  # the public import, as a library user writes it

    app = App(outdir=str(tmp_path))
    stack = Stack(app, "MyLlmStack")
    bucket = s3.Bucket.from_bucket_name(stack, "Models", "team-models")
    endpoint = LmiEndpoint(stack, "Llm", model=ModelArtifact.from_s3_prefix(bucket, "mistral-7b/"))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))

    assembly = app.synth()  # raises if cdk-nag finds an unacknowledged error

    template = json.loads((tmp_path / assembly.get_stack_by_name("MyLlmStack").template_file).read_text())
    types = {r["Type"] for r in template["Resources"].values()}
    assert {
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Endpoint",
        "AWS::KMS::Key",
        "AWS::SNS::Topic",
        "AWS::CloudWatch::Alarm",
    } <= types
    assert endpoint.endpoint_name.startswith("MyLlmStack-Llm")
