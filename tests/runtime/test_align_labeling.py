"""``genai align label``: A2I flow definition and human loops (botocore Stubber: A2I is not in moto), S3 by moto."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from genai_runtime import aws
from genai_runtime.align import labeling
from genai_runtime.errors import UsageError

REGION = "us-east-1"
ACCOUNT = "123456789012"
FLOW = "genai-preferences-ranking"
FLOW_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/{FLOW}"
TEAM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/genai-preferences"
UI = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-task-ui/genai-preferences-ranking"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/HumanLoopRole"
OUTPUT = "s3://labels-bucket/human-loops/"
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)

PROMPTS = [
    {"prompt": "What is the capital of France?", "responses": ["Paris.", "Lyon.", "I am not sure."]},
    {"prompt": "Say something kind.", "responses": ["You matter.", "Whatever.", "Have a good day!"]},
]


@pytest.fixture
def stubs(monkeypatch):
    """Stubbed sagemaker and A2I runtime clients behind ``aws.client``; S3 through moto."""
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws.clear_cache()
    with mock_aws():
        clients = {name: boto3.client(name, region_name=REGION) for name in ("sagemaker", "sagemaker-a2i-runtime")}
        stubbers = {name: Stubber(client) for name, client in clients.items()}
        real = aws.client
        monkeypatch.setattr(aws, "client", lambda service, *a, **k: clients.get(service) or real(service, *a, **k))
        for stubber in stubbers.values():
            stubber.activate()
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="labels-bucket")
        yield stubbers
        for stubber in stubbers.values():
            stubber.assert_no_pending_responses()
            stubber.deactivate()
    aws.clear_cache()


def _prompts(tmp_path: Path, records=PROMPTS) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _settings(**overrides) -> labeling.FlowSettings:
    values: dict[str, Any] = dict(name=FLOW, work_team_arn=TEAM, ui=UI, role_arn=ROLE, output_uri=OUTPUT)
    values.update(overrides)
    return labeling.FlowSettings(**values)


def _flow(status="Active", **loop_overrides) -> dict:
    loop = {
        "WorkteamArn": TEAM,
        "HumanTaskUiArn": UI,
        "TaskTitle": "Rank three responses",
        "TaskDescription": "Order the responses",
        "TaskCount": 1,
    }
    loop.update(loop_overrides)
    return {
        "FlowDefinitionArn": FLOW_ARN,
        "FlowDefinitionName": FLOW,
        "FlowDefinitionStatus": status,
        "CreationTime": NOW,
        "HumanLoopConfig": loop,
        "OutputConfig": {"S3OutputPath": OUTPUT},
        "RoleArn": ROLE,
    }


def _loop_names() -> list[str]:
    return [labeling.parse_task(json.dumps(r), i).loop_name(FLOW) for i, r in enumerate(PROMPTS, 1)]


def test_start_creates_the_flow_definition_once_and_one_loop_per_prompt(stubs, tmp_path):
    sagemaker, a2i = stubs["sagemaker"], stubs["sagemaker-a2i-runtime"]
    sagemaker.add_client_error(
        "describe_flow_definition", "ResourceNotFound", expected_params={"FlowDefinitionName": FLOW}
    )
    sagemaker.add_response(
        "create_flow_definition",
        {"FlowDefinitionArn": FLOW_ARN},
        expected_params={
            "FlowDefinitionName": FLOW,
            "HumanLoopConfig": {
                "WorkteamArn": TEAM,
                "HumanTaskUiArn": UI,
                "TaskTitle": "Rank three responses",
                "TaskDescription": ANY,
                "TaskCount": 1,
                "TaskAvailabilityLifetimeInSeconds": 7 * 24 * 3600,
                "TaskTimeLimitInSeconds": 1800,
                "TaskKeywords": ["ranking", "preferences"],
            },
            "OutputConfig": {"S3OutputPath": OUTPUT, "KmsKeyId": "alias/labels"},
            "RoleArn": ROLE,
        },
    )
    sagemaker.add_response("describe_flow_definition", _flow("Initializing"), {"FlowDefinitionName": FLOW})
    sagemaker.add_response("describe_flow_definition", _flow("Active"), {"FlowDefinitionName": FLOW})
    names = _loop_names()
    for name, record in zip(names, PROMPTS, strict=True):
        a2i.add_client_error(
            "describe_human_loop", "ResourceNotFoundException", expected_params={"HumanLoopName": name}
        )
        a2i.add_response(
            "start_human_loop",
            {"HumanLoopArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-loop/{name}"},
            expected_params={
                "HumanLoopName": name,
                "FlowDefinitionArn": FLOW_ARN,
                "HumanLoopInput": {"InputContent": json.dumps(record)},
            },
        )
    sleeps: list[float] = []
    settings = _settings(kms_key_id="alias/labels")
    tasks = labeling.read_prompts(_prompts(tmp_path))
    arn, created = labeling.ensure_flow_definition(settings, sleep=sleeps.append)
    report = labeling.start_loops(arn, FLOW, tasks)
    assert created and sleeps == [5.0]  # waited once for Initializing -> Active
    assert report.started == names and report.existing == []
    assert all(len(n) <= 63 and n.startswith("rank-") for n in names) and len(set(names)) == 2

    # A second run of the same file: the flow definition exists, both loops exist; nothing new starts.
    sagemaker.add_response("describe_flow_definition", _flow("Active"), {"FlowDefinitionName": FLOW})
    for name in names:
        a2i.add_response(
            "describe_human_loop",
            {
                "CreationTime": NOW,
                "HumanLoopStatus": "InProgress",
                "HumanLoopName": name,
                "HumanLoopArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-loop/{name}",
                "FlowDefinitionArn": FLOW_ARN,
            },
            {"HumanLoopName": name},
        )
    again = labeling.start(settings, _prompts(tmp_path))
    assert again.started == [] and again.existing == names and not again.created_flow_definition


def test_loop_names_are_content_hashes(tmp_path):
    first, second = (labeling.parse_task(json.dumps(r), 1) for r in PROMPTS)
    assert first.loop_name(FLOW) == labeling.parse_task(json.dumps(PROMPTS[0]), 7).loop_name(FLOW)  # not the line
    assert first.loop_name(FLOW) != second.loop_name(FLOW)
    assert first.loop_name(FLOW) != first.loop_name("another-flow")
    swapped = {"prompt": PROMPTS[0]["prompt"], "responses": list(reversed(PROMPTS[0]["responses"]))}
    assert labeling.parse_task(json.dumps(swapped), 1).loop_name(FLOW) != first.loop_name(FLOW)


def test_a_repeated_prompt_in_one_file_starts_once(stubs, tmp_path):
    a2i = stubs["sagemaker-a2i-runtime"]
    name = _loop_names()[0]
    a2i.add_client_error("describe_human_loop", "ResourceNotFoundException", expected_params={"HumanLoopName": name})
    a2i.add_response("start_human_loop", {"HumanLoopArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-loop/{name}"})
    tasks = labeling.read_prompts(_prompts(tmp_path, [PROMPTS[0], PROMPTS[0]]))
    report = labeling.start_loops(FLOW_ARN, FLOW, tasks)
    assert report.started == [name] and report.duplicates == [2]


def test_an_existing_flow_definition_with_other_settings_is_refused(stubs, tmp_path):
    other_team = TEAM.replace("genai-preferences", "other-team")
    stubs["sagemaker"].add_response("describe_flow_definition", _flow(WorkteamArn=other_team))
    with pytest.raises(UsageError, match="exists with another WorkteamArn.*new --flow-definition-name"):
        labeling.start(_settings(), _prompts(tmp_path))


def test_a_ui_template_on_s3_becomes_a_human_task_ui(stubs, tmp_path):
    import boto3

    boto3.client("s3", region_name=REGION).put_object(
        Bucket="labels-bucket", Key="ui/ranking.html", Body=b"<crowd-form>{{ task.input.prompt }}</crowd-form>"
    )
    sagemaker = stubs["sagemaker"]
    ui_name = f"{FLOW}-ui"
    sagemaker.add_client_error("describe_flow_definition", "ResourceNotFound")
    sagemaker.add_client_error(
        "describe_human_task_ui", "ResourceNotFound", expected_params={"HumanTaskUiName": ui_name}
    )
    sagemaker.add_response(
        "create_human_task_ui",
        {"HumanTaskUiArn": UI},
        expected_params={
            "HumanTaskUiName": ui_name,
            "UiTemplate": {"Content": "<crowd-form>{{ task.input.prompt }}</crowd-form>"},
        },
    )
    sagemaker.add_response("create_flow_definition", {"FlowDefinitionArn": FLOW_ARN})
    sagemaker.add_response("describe_flow_definition", _flow("Active"))
    arn, created = labeling.ensure_flow_definition(_settings(ui="s3://labels-bucket/ui/ranking.html"))
    assert arn == FLOW_ARN and created


def _summary(name: str, status: str) -> dict:
    return {"HumanLoopName": name, "HumanLoopStatus": status, "CreationTime": NOW, "FlowDefinitionArn": FLOW_ARN}


def test_status_lists_every_page(stubs):
    stubs["sagemaker"].add_response("describe_flow_definition", _flow())
    a2i = stubs["sagemaker-a2i-runtime"]
    base = {"FlowDefinitionArn": FLOW_ARN, "MaxResults": 100, "SortOrder": "Ascending"}
    a2i.add_response(
        "list_human_loops", {"HumanLoopSummaries": [_summary("rank-a", "Completed")], "NextToken": "t1"}, base
    )
    a2i.add_response(
        "list_human_loops",
        {"HumanLoopSummaries": [_summary("rank-b", "InProgress")]},
        {**base, "NextToken": "t1"},
    )
    loops = labeling.loop_statuses(labeling.flow_definition_arn(FLOW))
    assert [(loop.name, loop.status) for loop in loops] == [("rank-a", "Completed"), ("rank-b", "InProgress")]
    assert loops[0].created.startswith("2026-12-01")


def test_status_of_a_missing_flow_definition_says_how_to_create_it(stubs):
    stubs["sagemaker"].add_client_error("describe_flow_definition", "ResourceNotFound")
    with pytest.raises(UsageError, match="no flow definition 'genai-preferences-ranking'.*label start creates it"):
        labeling.flow_definition_arn(FLOW)


def test_fetch_downloads_each_completed_output(stubs, tmp_path):
    import boto3

    from genai_runtime.align import preferences

    key = f"human-loops/{FLOW}/2026/12/01/12/00/00/rank-a/output.json"
    output = {
        "flowDefinitionArn": FLOW_ARN,
        "humanLoopName": "rank-a",
        "inputContent": PROMPTS[0],
        "humanAnswers": [{"answerContent": {"rank-0": "1", "rank-1": "3", "rank-2": "2", "confirmed": {"on": True}}}],
    }
    boto3.client("s3", region_name=REGION).put_object(Bucket="labels-bucket", Key=key, Body=json.dumps(output))
    stubs["sagemaker"].add_response("describe_flow_definition", _flow())
    a2i = stubs["sagemaker-a2i-runtime"]
    a2i.add_response(
        "list_human_loops", {"HumanLoopSummaries": [_summary("rank-a", "Completed"), _summary("rank-b", "InProgress")]}
    )
    a2i.add_response(
        "describe_human_loop",
        {
            "CreationTime": NOW,
            "HumanLoopStatus": "Completed",
            "HumanLoopName": "rank-a",
            "HumanLoopArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-loop/rank-a",
            "FlowDefinitionArn": FLOW_ARN,
            "HumanLoopOutput": {"OutputS3Uri": f"s3://labels-bucket/{key}"},
        },
        {"HumanLoopName": "rank-a"},
    )
    report = labeling.fetch_outputs(labeling.flow_definition_arn(FLOW), tmp_path / "out")
    assert report.written == [tmp_path / "out" / "rank-a.json"] and report.pending == ["rank-b"]
    fetched = json.loads((tmp_path / "out" / "rank-a.json").read_text())
    assert fetched == output
    # The ranking template's answer fields and the fetched folder are what ``genai align pairs`` reads.
    assert preferences.read_ranks(fetched["humanAnswers"][0]["answerContent"], 3) == [1, 3, 2]
    converted = preferences.convert_paths([tmp_path / "out"])
    assert converted.bad == [] and converted.rankings == 1
    best, middle, worst = "Paris.", "I am not sure.", "Lyon."
    assert {(p["chosen"], p["rejected"]) for p in converted.pairs} == {(best, middle), (best, worst), (middle, worst)}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", r"prompts.jsonl:2: not JSON"),
        ("[1, 2]", r"prompts.jsonl:2: expected an object"),
        ('{"prompt": "p", "responses": ["a", "b"]}', r"prompts.jsonl:2: responses must be a list of exactly 3.*got 2"),
        ('{"prompt": "p", "responses": ["a", "b", "c", "d"]}', r"prompts.jsonl:2: .*exactly 3.*got 4"),
        ('{"prompt": "p", "responses": ["a", " ", "c"]}', r"prompts.jsonl:2: response 2 must be a non-empty string"),
        ('{"prompt": "p", "responses": ["a", "b", "a "]}', r"prompts.jsonl:2: responses 1 and 3 are the same"),
        ('{"prompt": "", "responses": ["a", "b", "c"]}', r"prompts.jsonl:2: prompt must be a non-empty string"),
        ('{"prompt": "p", "answers": ["a", "b", "c"]}', r"prompts.jsonl:2: unknown key\(s\) answers"),
        ('{"prompt": "p", "responses": ["a", 2, "c"]}', r"prompts.jsonl:2: response 2 must be a non-empty string"),
    ],
)
def test_bad_prompts_files_name_the_line(tmp_path, line, message):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps(PROMPTS[0]) + "\n" + line + "\n")
    with pytest.raises(UsageError, match=message):
        labeling.read_prompts(path)


def test_empty_and_missing_prompts_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(UsageError, match="no prompts"):
        labeling.read_prompts(tmp_path / "empty.jsonl")
    with pytest.raises(UsageError, match="no such file"):
        labeling.read_prompts(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Bad_Name"}, "--flow-definition-name 'Bad_Name'"),
        ({"work_team_arn": "team"}, "--work-team 'team' is not a work team ARN"),
        ({"ui": "https://example.com/ui.html"}, "--ui .* neither a human task UI ARN nor an s3"),
        ({"role_arn": "HumanLoopRole"}, "--role 'HumanLoopRole' is not an IAM role ARN"),
        ({"output_uri": "labels-bucket/out"}, "--output 'labels-bucket/out' is not an s3://"),
        ({"task_count": 4}, "--task-count 4 must be 1, 2 or 3"),
    ],
)
def test_bad_flow_settings_fail_before_any_call(tmp_path, overrides, message):
    with pytest.raises(UsageError, match=message):
        labeling.start(_settings(**overrides), _prompts(tmp_path))


def _cli(argv: list[str]) -> argparse.Namespace:
    from genai_runtime.cli import align_label

    parser = argparse.ArgumentParser(prog="genai align")
    align_label.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_start_and_status(stubs, tmp_path, capsys):
    names = _loop_names()
    stubs["sagemaker"].add_response("describe_flow_definition", _flow())
    a2i = stubs["sagemaker-a2i-runtime"]
    for name in names:
        a2i.add_client_error("describe_human_loop", "ResourceNotFoundException")
        a2i.add_response(
            "start_human_loop", {"HumanLoopArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-loop/{name}"}
        )
    argv = ["label", "start", "--work-team", TEAM, "--ui", UI, "--role", ROLE, "--output", OUTPUT]
    args = _cli([*argv, "--prompts", str(_prompts(tmp_path)), "--json"])
    assert args.run(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["started"] == names and printed["created_flow_definition"] is False

    stubs["sagemaker"].add_response("describe_flow_definition", _flow())
    a2i.add_response("list_human_loops", {"HumanLoopSummaries": [_summary(names[0], "Completed")]})
    args = _cli(["label", "status"])
    assert args.run(args) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 Completed"


def test_cli_reports_a_service_failure_in_one_line(stubs, capsys):
    stubs["sagemaker"].add_client_error("describe_flow_definition", "AccessDeniedException", "not allowed")
    args = _cli(["label", "fetch", "--out", "unused"])
    assert args.run(args) == 1
    assert "sagemaker describe_flow_definition: AccessDeniedException: not allowed" in capsys.readouterr().err


def test_genai_align_label_is_registered_and_names_the_bad_line(tmp_path, capsys):
    from genai_runtime.cli import main

    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps(PROMPTS[0]) + "\n" + json.dumps({"prompt": "p", "responses": ["a", "b"]}) + "\n")
    argv = ["align", "label", "start", "--work-team", TEAM, "--ui", UI, "--role", ROLE, "--output", OUTPUT]
    assert main([*argv, "--prompts", str(path)]) == 2
    assert f"{path}:2: responses must be a list of exactly 3" in capsys.readouterr().err
