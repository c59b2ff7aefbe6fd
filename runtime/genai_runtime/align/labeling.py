"""Human preference collection with Amazon A2I: rank three responses per prompt (the book's chapter 7).

``genai align label start|status|fetch`` runs on these functions:

- ``read_prompts(path)``: a JSON Lines file, each line ``{"prompt": "...", "responses": ["...", "...", "..."]}``
  with exactly three non-empty, distinct responses; a bad line is a ``UsageError`` naming it.
- ``ensure_flow_definition(settings)``: CloudFormation has no resource for an A2I flow definition, so it is
  created here (``CreateFlowDefinition``) when missing, and an existing one with other settings is refused
  (flow definitions cannot be updated). A ``--ui`` given as ``s3://`` becomes a ``HumanTaskUi`` first.
- ``start_loops(flow_arn, flow_name, tasks)``: one human loop per prompt. A loop's name is a hash of the
  flow definition's name and the task's content, so a re-run starts only what is new.
- ``loop_statuses(flow_arn)`` and ``fetch_outputs(flow_arn, out_dir)``: the loops and their states; each
  completed loop's ``output.json`` downloaded as ``<out_dir>/<loop name>.json``.

A loop's input is ``{"prompt": ..., "responses": [...]}`` (what the ranking template reads as ``task.input``)
and its answer is ``{"rank-0": "2", "rank-1": "1", "rank-2": "3", ...}``: the rank of each response in input
order, 1 the best. ``genai align pairs`` (``align.preferences``) turns the fetched files into pairs.

Every AWS call goes through ``genai_runtime.aws.client``; failures become ``DependencyError``s naming the call.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import aws
from ..errors import UsageError

RESPONSES_PER_TASK = 3
LOOP_NAME_PREFIX = "rank-"
_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9])*$")  # flow definitions, human loops, task UIs
_MAX_NAME = 63
_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?$")
_ARN = {
    "work_team": re.compile(r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:workteam/.+"),
    "ui": re.compile(r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:[0-9]{12}:human-task-ui/.+"),
    "role": re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$"),
}
_MAX_INPUT_CONTENT = 3_145_728  # StartHumanLoop HumanLoopInput.InputContent
NOT_FOUND = frozenset({"ResourceNotFound", "ResourceNotFoundException"})
ACTIVE = "Active"
COMPLETED = "Completed"


@dataclass(frozen=True)
class RankingTask:
    """One prompt and the three responses a labeler ranks; ``line`` is where it came from."""

    prompt: str
    responses: tuple[str, ...]
    line: int = 0

    def input_content(self) -> str:
        """``HumanLoopInput.InputContent``: what the ranking template reads as ``task.input``."""
        return json.dumps({"prompt": self.prompt, "responses": list(self.responses)})

    def loop_name(self, flow_definition_name: str) -> str:
        """A deterministic human-loop name: the same task in the same flow definition is the same loop."""
        canonical = json.dumps(
            {"flow": flow_definition_name, "prompt": self.prompt, "responses": list(self.responses)},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return LOOP_NAME_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:48]


@dataclass(frozen=True)
class FlowSettings:
    """What ``CreateFlowDefinition`` needs (the ``PreferenceCollection`` stack outputs most of it)."""

    name: str
    work_team_arn: str
    ui: str  # a HumanTaskUi ARN, or s3://bucket/key of a Liquid template
    role_arn: str
    output_uri: str
    kms_key_id: str | None = None
    task_title: str = "Rank three responses"
    task_description: str = "Order the responses best first: helpful, harmless, honest. No ties."
    task_count: int = 1
    task_availability_s: int = 7 * 24 * 3600
    task_time_limit_s: int = 1800

    def validate(self) -> None:
        require_name("--flow-definition-name", self.name)
        if not _ARN["work_team"].match(self.work_team_arn):
            raise UsageError(
                f"--work-team {self.work_team_arn!r} is not a work team ARN (arn:aws:sagemaker:...:workteam/...)"
            )
        if not (_ARN["ui"].match(self.ui) or _S3_URI.match(self.ui)):
            raise UsageError(f"--ui {self.ui!r} is neither a human task UI ARN nor an s3://bucket/key template")
        if not _ARN["role"].match(self.role_arn):
            raise UsageError(f"--role {self.role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        parse_s3_uri(self.output_uri, "--output")
        if not 1 <= self.task_count <= 3:
            raise UsageError(f"--task-count {self.task_count} must be 1, 2 or 3 (labelers per prompt)")

    def request(self, ui_arn: str) -> dict[str, Any]:
        """The ``CreateFlowDefinition`` request (botocore's ``sagemaker`` model)."""
        output: dict[str, str] = {"S3OutputPath": self.output_uri}
        if self.kms_key_id:
            output["KmsKeyId"] = self.kms_key_id
        return {
            "FlowDefinitionName": self.name,
            "HumanLoopConfig": {
                "WorkteamArn": self.work_team_arn,
                "HumanTaskUiArn": ui_arn,
                "TaskTitle": self.task_title,
                "TaskDescription": self.task_description,
                "TaskCount": self.task_count,
                "TaskAvailabilityLifetimeInSeconds": self.task_availability_s,
                "TaskTimeLimitInSeconds": self.task_time_limit_s,
                "TaskKeywords": ["ranking", "preferences"],
            },
            "OutputConfig": output,
            "RoleArn": self.role_arn,
        }


@dataclass
class StartReport:
    flow_definition_arn: str
    created_flow_definition: bool = False
    started: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)  # lines repeating an earlier line's task


@dataclass(frozen=True)
class LoopStatus:
    name: str
    status: str
    created: str = ""
    failure_reason: str = ""


@dataclass
class FetchReport:
    written: list[Path] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # loops not completed (in progress, failed, stopped)


def require_name(flag: str, name: str) -> str:
    if len(name) > _MAX_NAME or not _NAME.match(name):
        raise UsageError(
            f"{flag} {name!r}: use 1-63 lower-case letters, digits and hyphens, not starting or ending with '-'"
        )
    return name


def parse_s3_uri(uri: str, flag: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key`` or a ``UsageError`` naming ``flag``."""
    match = _S3_URI.match(uri)
    if not match:
        raise UsageError(f"{flag} {uri!r} is not an s3://BUCKET/PREFIX URI")
    return match.group(1), match.group(2) or ""


# ---- the prompts file


def read_prompts(path: Path) -> list[RankingTask]:
    """The tasks of a JSON Lines prompts file; any bad line is a ``UsageError`` naming the file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--prompts {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--prompts {path}: cannot read it ({error})") from None
    tasks = [parse_task(line, number, path) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not tasks:
        raise UsageError(f"--prompts {path}: no prompts (one JSON object per line)")
    return tasks


def parse_task(line: str, number: int, path: Path | str = "prompts") -> RankingTask:
    where = f"{path}:{number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise UsageError(f"{where}: not JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise UsageError(f'{where}: expected an object {{"prompt": ..., "responses": [...]}}')
    unknown = sorted(set(record) - {"prompt", "responses"})
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)} (expected prompt and responses)")
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UsageError(f"{where}: prompt must be a non-empty string")
    responses = record.get("responses")
    if not isinstance(responses, list) or len(responses) != RESPONSES_PER_TASK:
        count = len(responses) if isinstance(responses, list) else type(responses).__name__
        raise UsageError(f"{where}: responses must be a list of exactly {RESPONSES_PER_TASK} strings, got {count}")
    for index, response in enumerate(responses, 1):
        if not isinstance(response, str) or not response.strip():
            raise UsageError(f"{where}: response {index} must be a non-empty string")
    stripped = [r.strip() for r in responses]
    if len(set(stripped)) != RESPONSES_PER_TASK:
        first, second = next((i, j) for i in range(3) for j in range(i + 1, 3) if stripped[i] == stripped[j])
        raise UsageError(f"{where}: responses {first + 1} and {second + 1} are the same: a ranking needs distinct ones")
    task = RankingTask(prompt=prompt, responses=tuple(responses), line=number)
    if len(task.input_content().encode("utf-8")) > _MAX_INPUT_CONTENT:
        raise UsageError(f"{where}: the task is larger than A2I's 3 MiB input limit")
    return task


# ---- AWS


def _call(service: str, operation: str, **request: Any) -> dict[str, Any]:
    client = aws.client(service)
    try:
        return getattr(client, operation)(**request)
    except Exception as error:
        if aws.is_aws_error(error):
            raise aws.dependency_error(error, f"{service} {operation}") from error
        raise


def _not_found(error: BaseException) -> bool:
    cause = error.__cause__ if error.__cause__ is not None else error
    return aws.error_code(cause) in NOT_FOUND


def describe_flow_definition(name: str) -> dict[str, Any] | None:
    try:
        return _call("sagemaker", "describe_flow_definition", FlowDefinitionName=name)
    except Exception as error:
        if _not_found(error):
            return None
        raise


def ensure_human_task_ui(ui: str, flow_definition_name: str) -> str:
    """The ARN of ``ui``: itself, or a HumanTaskUi made (once) from the template at ``s3://...``."""
    if _ARN["ui"].match(ui):
        return ui
    bucket, key = parse_s3_uri(ui, "--ui")
    name = f"{flow_definition_name[: _MAX_NAME - 3]}-ui"
    try:
        return _call("sagemaker", "describe_human_task_ui", HumanTaskUiName=name)["HumanTaskUiArn"]
    except Exception as error:
        if not _not_found(error):
            raise
    body = _call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    return _call("sagemaker", "create_human_task_ui", HumanTaskUiName=name, UiTemplate={"Content": body})[
        "HumanTaskUiArn"
    ]


def _differences(existing: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    loop, want = existing.get("HumanLoopConfig", {}), wanted["HumanLoopConfig"]
    differences = [
        key for key in ("WorkteamArn", "HumanTaskUiArn", "TaskCount") if key in loop and loop[key] != want[key]
    ]
    if existing.get("RoleArn") != wanted["RoleArn"]:
        differences.append("RoleArn")
    if existing.get("OutputConfig", {}).get("S3OutputPath", "").rstrip("/") != wanted["OutputConfig"][
        "S3OutputPath"
    ].rstrip("/"):
        differences.append("S3OutputPath")
    return differences


def ensure_flow_definition(
    settings: FlowSettings,
    *,
    wait_s: float = 300.0,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, bool]:
    """``(flow definition ARN, created now)``, created when missing and waited for until Active."""
    settings.validate()
    existing = describe_flow_definition(settings.name)
    created = False
    if existing is None:
        ui_arn = ensure_human_task_ui(settings.ui, settings.name)
        request = settings.request(ui_arn)
        try:
            _call("sagemaker", "create_flow_definition", **request)
            created = True
        except Exception as error:
            cause = error.__cause__ if error.__cause__ is not None else error
            if aws.error_code(cause) != "ResourceInUse":  # created meanwhile by another run
                raise
        existing = describe_flow_definition(settings.name) or {}
    else:
        ui_arn = settings.ui if _ARN["ui"].match(settings.ui) else existing["HumanLoopConfig"]["HumanTaskUiArn"]
        differences = _differences(existing, settings.request(ui_arn))
        if differences:
            raise UsageError(
                f"flow definition {settings.name!r} exists with another {', '.join(differences)}; flow definitions "
                "cannot change: give a new --flow-definition-name"
            )
    deadline = time.monotonic() + wait_s
    while existing.get("FlowDefinitionStatus") != ACTIVE:
        status = existing.get("FlowDefinitionStatus")
        if status in ("Failed", "Deleting"):
            reason = existing.get("FailureReason", "")
            raise UsageError(f"flow definition {settings.name!r} is {status}{': ' + reason if reason else ''}")
        if time.monotonic() > deadline:
            raise UsageError(f"flow definition {settings.name!r} is still {status} after {wait_s:.0f} s; run again")
        sleep(poll_s)
        existing = describe_flow_definition(settings.name) or {}
    return existing["FlowDefinitionArn"], created


def flow_definition_arn(name: str) -> str:
    require_name("--flow-definition-name", name)
    found = describe_flow_definition(name)
    if found is None:
        raise UsageError(f"no flow definition {name!r} in this account and Region (genai align label start creates it)")
    return found["FlowDefinitionArn"]


def loop_exists(name: str) -> bool:
    try:
        _call("sagemaker-a2i-runtime", "describe_human_loop", HumanLoopName=name)
        return True
    except Exception as error:
        if _not_found(error):
            return False
        raise


def start_loops(flow_arn: str, flow_name: str, tasks: Iterable[RankingTask]) -> StartReport:
    """Start one human loop per task not started before (by its deterministic name)."""
    report = StartReport(flow_definition_arn=flow_arn)
    seen: set[str] = set()
    for task in tasks:
        name = task.loop_name(flow_name)
        if name in seen:
            report.duplicates.append(task.line)
            continue
        seen.add(name)
        if loop_exists(name):
            report.existing.append(name)
            continue
        try:
            _call(
                "sagemaker-a2i-runtime",
                "start_human_loop",
                HumanLoopName=name,
                FlowDefinitionArn=flow_arn,
                HumanLoopInput={"InputContent": task.input_content()},
            )
        except Exception as error:
            cause = error.__cause__ if error.__cause__ is not None else error
            if aws.error_code(cause) == "ConflictException" and loop_exists(name):  # started meanwhile
                report.existing.append(name)
                continue
            raise
        report.started.append(name)
    return report


def start(settings: FlowSettings, prompts: Path) -> StartReport:
    """``genai align label start``: validate everything first, then the flow definition, then the loops."""
    settings.validate()
    tasks = read_prompts(prompts)
    flow_arn, created = ensure_flow_definition(settings)
    report = start_loops(flow_arn, settings.name, tasks)
    report.created_flow_definition = created
    return report


def _summaries(flow_arn: str) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        request: dict[str, Any] = {"FlowDefinitionArn": flow_arn, "MaxResults": 100, "SortOrder": "Ascending"}
        if token:
            request["NextToken"] = token
        page = _call("sagemaker-a2i-runtime", "list_human_loops", **request)
        yield from page.get("HumanLoopSummaries", [])
        token = page.get("NextToken")
        if not token:
            return


def loop_statuses(flow_arn: str) -> list[LoopStatus]:
    return [
        LoopStatus(
            name=s["HumanLoopName"],
            status=s.get("HumanLoopStatus", ""),
            created=s["CreationTime"].isoformat() if hasattr(s.get("CreationTime"), "isoformat") else "",
            failure_reason=s.get("FailureReason", ""),
        )
        for s in _summaries(flow_arn)
    ]


def fetch_outputs(flow_arn: str, out_dir: Path) -> FetchReport:
    """Download each completed loop's ``output.json`` to ``out_dir/<loop name>.json`` (atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = FetchReport()
    for loop in loop_statuses(flow_arn):
        if loop.status != COMPLETED:
            report.pending.append(loop.name)
            continue
        described = _call("sagemaker-a2i-runtime", "describe_human_loop", HumanLoopName=loop.name)
        uri = described.get("HumanLoopOutput", {}).get("OutputS3Uri", "")
        bucket, key = parse_s3_uri(uri, f"loop {loop.name} output")
        body = _call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read()
        target = out_dir / f"{loop.name}.json"
        _write_atomically(target, body)
        report.written.append(target)
    return report


def _write_atomically(target: Path, body: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(body)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
