"""Where an endpoint's model weights come from, and the least-privilege read grant for them."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ._validation import invalid
from .nag import allow


@dataclass(frozen=True)
class BoundModelArtifact:
    """What a ``CfnModel`` container definition needs: exactly one of the two is set."""

    model_data_url: str | None = None
    model_data_source: sagemaker.CfnModel.ModelDataSourceProperty | None = None


class ModelArtifact:
    """Model weights for an LMI endpoint.

    Prefer ``from_s3_prefix``: LMI recommends uncompressed artifacts, which SageMaker copies
    to ``/opt/ml/model`` without an extract step (minutes faster for multi-GB checkpoints).
    """

    def __init__(self, kind: str, *, bucket: s3.IBucket | None = None, key: str = "", path: str = "") -> None:
        self._kind = kind
        self._bucket = bucket
        self._key = key
        self._path = path

    @staticmethod
    def from_s3_prefix(bucket: s3.IBucket, prefix: str) -> ModelArtifact:
        """An uncompressed model folder under ``s3://bucket/prefix/``."""
        if not isinstance(prefix, str) or not prefix.strip("/"):
            raise invalid("prefix", prefix, "name the folder that holds the model, e.g. 'llama2-7b/'.")
        if prefix.startswith("/") or prefix.startswith("s3://"):
            raise invalid("prefix", prefix, "give the key prefix inside the bucket, without 's3://' or a leading '/'.")
        return ModelArtifact("prefix", bucket=bucket, key=prefix.rstrip("/") + "/")

    @staticmethod
    def from_s3_object(bucket: s3.IBucket, key: str) -> ModelArtifact:
        """A compressed ``model.tar.gz`` object."""
        if not isinstance(key, str) or not key.endswith(".tar.gz"):
            raise invalid(
                "key", key, "SageMaker extracts only gzip tarballs; point at a '.tar.gz' object or use from_s3_prefix."
            )
        return ModelArtifact("object", bucket=bucket, key=key.lstrip("/"))

    @staticmethod
    def from_asset(path: str | os.PathLike[str]) -> ModelArtifact:
        """A local model folder, packed into a reproducible ``model.tar.gz`` and shipped as a CDK asset.

        Fine for small models and adapters; upload multi-GB checkpoints once and use
        ``from_s3_prefix`` instead.
        """
        folder = Path(path)
        if not folder.is_dir() or not any(folder.iterdir()):
            raise invalid("path", str(path), "point at a non-empty local folder that holds the model files.")
        return ModelArtifact("asset", path=str(folder.resolve()))

    @property
    def description(self) -> str:
        if self._kind == "asset":
            return f"asset:{self._path}"
        return f"s3://{self._bucket.bucket_name if self._bucket else '?'}/{self._key}"

    def bind(self, scope: Construct, role: iam.IRole) -> BoundModelArtifact:
        """Create what the artifact needs in ``scope`` and grant ``role`` read access to it."""
        if self._kind == "asset":
            asset = s3_assets.Asset(scope, "ModelAsset", path=str(_reproducible_tarball(Path(self._path))))
            _grant_get(role, asset.bucket, asset.s3_object_key)
            return BoundModelArtifact(model_data_url=asset.s3_object_url)
        assert self._bucket is not None
        if self._kind == "object":
            _grant_get(role, self._bucket, self._key)
            return BoundModelArtifact(model_data_url=f"s3://{self._bucket.bucket_name}/{self._key}")
        _grant_get(role, self._bucket, f"{self._key}*")
        allow(
            role,
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self._bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{self._key}*"]}},
            ),
        )
        source = sagemaker.CfnModel.ModelDataSourceProperty(
            s3_data_source=sagemaker.CfnModel.S3DataSourceProperty(
                s3_uri=f"s3://{self._bucket.bucket_name}/{self._key}",
                s3_data_type="S3Prefix",
                compression_type="None",
            )
        )
        return BoundModelArtifact(model_data_source=source)


def _grant_get(role: iam.IRole, bucket: s3.IBucket, key_pattern: str) -> None:
    allow(
        role,
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(key_pattern)]),
        "SageMaker copies every object under the model's own S3 prefix; the wildcard stops at that prefix.",
    )
    if bucket.encryption_key is not None:
        bucket.encryption_key.grant_decrypt(role)


def _reproducible_tarball(folder: Path) -> Path:
    """Pack ``folder`` into a gzip tarball whose bytes depend only on file names and contents.

    The same folder always yields the same asset hash, so an unchanged model is never
    re-uploaded and never replaces the endpoint.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(folder)).encode())
        digest.update(file.read_bytes())
    out_dir = Path(tempfile.gettempdir()) / "genai-cdk-model-assets"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{digest.hexdigest()[:32]}" / "model.tar.gz"
    if target.exists():
        return target
    target.parent.mkdir(exist_ok=True)
    partial = target.with_suffix(".partial")
    with open(partial, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for file in files:
                info = tar.gettarinfo(str(file), arcname=str(file.relative_to(folder)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                info.mode = 0o644
                with open(file, "rb") as handle:
                    tar.addfile(info, handle)
    partial.replace(target)
    return target
