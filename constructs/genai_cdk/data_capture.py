"""Capture of endpoint requests and responses to S3, e.g. to analyse a shadow variant offline."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_s3 as s3

from ._validation import invalid, require_int


@dataclass(frozen=True)
class DataCapture:
    """Requests/responses written as JSON Lines under ``s3://bucket/prefix/ENDPOINT/VARIANT/...``.

    Without ``bucket`` the endpoint creates a KMS-encrypted, TLS-only bucket with access logs.

    :param sampling_percentage: share of invocations captured, 1-100; default 100.
    :param bucket: where captures go; default a new bucket.
    :param prefix: key prefix in the bucket; default ``data-capture``.
    :param capture_requests: capture the request payloads; default True.
    :param capture_responses: capture the response payloads; default True.
    """

    sampling_percentage: int = 100
    bucket: s3.IBucket | None = None
    prefix: str = "data-capture"
    capture_requests: bool = True
    capture_responses: bool = True

    def __post_init__(self) -> None:
        require_int("data_capture.sampling_percentage", self.sampling_percentage, minimum=1, maximum=100)
        if not self.capture_requests and not self.capture_responses:
            raise invalid(
                "data_capture",
                "no requests, no responses",
                "capture requests, responses or both; pass data_capture=None to turn it off.",
            )
        if not isinstance(self.prefix, str) or not self.prefix.strip("/") or "s3://" in self.prefix:
            raise invalid("data_capture.prefix", self.prefix, "give a key prefix such as 'data-capture'.")
