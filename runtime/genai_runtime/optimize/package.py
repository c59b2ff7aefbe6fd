"""Lay out a model folder for LMI (with ``serving.properties``) and upload it to S3, either as an
uncompressed prefix (what ``ModelArtifact.from_s3_prefix`` consumes) or as ``model.tar.gz``.

By default the folder also gets ``model.py`` and ``genai_lmi/`` (``inference.lmi_formatter``): LMI keeps
its engine and continuous batching and serves the book's request shape through them. LoRA adapters go
to ``adapters/<name>/``, where LMI registers each at start-up under its folder's name.

Every file's SHA-256 goes into ``manifest.json`` and into the object's metadata, so a re-run
uploads only what changed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genai_contracts.lmi_options import LmiOptions

from ..errors import UsageError
from ..inference.engine import find_adapters
from ..inference.lmi_formatter import write_formatter
from ..inference.serving_properties import write_serving_properties
from ..models.io import prepare_output_dir, require_model_dir

MANIFEST = "manifest.json"
COMPILED_DIR = "compiled"
COMPILED_GRAPH_PATH = "/opt/ml/model/compiled"
"""Where SageMaker puts the packaged ``compiled/`` folder (the model artifact lands in /opt/ml/model)."""
CHECKSUM_KEY = "sha256"


@dataclass
class UploadReport:
    uri: str
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def layout(
    model_dir: str | Path,
    out: str | Path,
    options: LmiOptions,
    instance_type: str,
    custom_handler: bool = False,
    adapters_dir: str | Path | None = None,
    compiled_dir: str | Path | None = None,
) -> Path:
    """Copy the model files to ``out``, add ``serving.properties``, the formatters (unless the custom
    handler replaces LMI's engine), the adapters and a checksum manifest."""
    model_dir = require_model_dir(model_dir)
    adapters = find_adapters(Path(adapters_dir)) if adapters_dir is not None else {}
    try:  # validate before anything is written
        from ..inference.serving_properties import render_serving_properties

        render_serving_properties(options, instance_type, custom_handler=custom_handler)
    except ValueError as error:
        raise UsageError(str(error)) from None
    _check_compiled(options, instance_type, compiled_dir)
    if adapters and not options.enable_lora and not custom_handler:
        raise UsageError(
            "--adapters: LMI serves LoRA adapters only with enable_lora; package with --enable-lora "
            "(LmiOptions(enable_lora=True))"
        )
    out = prepare_output_dir(out)
    for source in sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != MANIFEST):
        target = out / source.relative_to(model_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    for name, folder in adapters.items():
        shutil.copytree(folder, out / "adapters" / name)
    if compiled_dir is not None:
        shutil.copytree(compiled_dir, out / COMPILED_DIR)
    write_serving_properties(out, options, instance_type, custom_handler=custom_handler)
    if not custom_handler:
        write_formatter(out)
    manifest = {str(p.relative_to(out)): sha256(p) for p in sorted(out.rglob("*")) if p.is_file()}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def _check_compiled(options: LmiOptions, instance_type: str, compiled_dir: str | Path | None) -> None:
    """``compiled_graph_path`` must name the folder this package creates, holding graphs of the same shapes."""
    from .compile import read_settings

    if compiled_dir is None:
        if options.compiled_graph_path is not None:
            raise UsageError(
                f"compiled_graph_path={options.compiled_graph_path}: nothing puts graphs there; pass "
                "--compiled DIR (from `genai optimize compile`) or drop compiled_graph_path"
            )
        return
    if options.compiled_graph_path != COMPILED_GRAPH_PATH:
        raise UsageError(
            f"--compiled: the graphs go to {COMPILED_GRAPH_PATH}; set compiled_graph_path to it "
            f"(got {options.compiled_graph_path})"
        )
    settings = read_settings(compiled_dir)
    if settings.instance_type.split(".")[1] != instance_type.split(".")[1]:
        raise UsageError(f"--compiled: graphs for {settings.instance_type}, package for {instance_type}")
    problems = settings.mismatches(options, instance_type)
    if problems:
        raise UsageError(
            "--compiled: " + "; ".join(problems) + " - LMI would recompile at start-up (and may miss "
            "its loading timeout); compile and package with the same values"
        )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise UsageError(f"--s3-uri={uri}: give s3://BUCKET/PREFIX/")
    return bucket, key


def upload_prefix(folder: str | Path, uri: str, client=None, kms_key_id: str | None = None) -> UploadReport:
    """Upload every file of ``folder`` under ``uri`` uncompressed; skip files whose checksum matches."""
    folder = Path(folder)
    bucket, prefix = parse_s3_uri(uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    client = client or _client()
    report = UploadReport(f"s3://{bucket}/{prefix}")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = prefix + str(path.relative_to(folder))
        _put_if_changed(client, bucket, key, path, report, kms_key_id)
    return report


def upload_tarball(folder: str | Path, uri: str, client=None, kms_key_id: str | None = None) -> UploadReport:
    """Pack ``folder`` into a reproducible ``model.tar.gz`` and upload it if its checksum changed."""
    folder = Path(folder)
    bucket, key = parse_s3_uri(uri)
    if not key.endswith(".tar.gz"):
        key = key.rstrip("/") + ("/" if key else "") + "model.tar.gz"
    tarball = folder.parent / f"{folder.name}.model.tar.gz"
    with open(tarball, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
                info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
    client = client or _client()
    report = UploadReport(f"s3://{bucket}/{key}")
    _put_if_changed(client, bucket, key, tarball, report, kms_key_id)
    return report


def _put_if_changed(
    client, bucket: str, key: str, path: Path, report: UploadReport, kms_key_id: str | None = None
) -> None:
    from botocore.exceptions import ClientError

    checksum = sha256(path)
    try:
        existing = client.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get(CHECKSUM_KEY)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise UsageError(f"s3://{bucket}/{key}: {error}") from None
        existing = None
    if existing == checksum:
        report.unchanged.append(key)
        return
    extra: dict[str, Any] = {"Metadata": {CHECKSUM_KEY: checksum}}
    if kms_key_id:
        extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_id)
    client.upload_file(str(path), bucket, key, ExtraArgs=extra)
    report.uploaded.append(key)


def _client():
    import boto3

    return boto3.client("s3")
