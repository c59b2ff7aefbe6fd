"""``genai align label start|status|fetch``: human preference rankings through Amazon A2I human loops.

``register(sub)`` adds ``label`` to the ``genai align`` group's subparsers (``cli/align.py`` calls it).
The values come from a ``PreferenceCollection`` stack's outputs (``WorkteamArn``, ``HumanTaskUiArn``,
``RoleArn``, ``OutputUri``, ``KeyArn``). boto3 loads only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._args import positive_int

DEFAULT_FLOW_DEFINITION = "genai-preferences-ranking"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "label", help="collect human rankings of 3 responses per prompt (A2I human loops on a private work team)"
    )
    commands = parser.add_subparsers(dest="label_command", metavar="COMMAND", required=True)

    start = commands.add_parser(
        "start", help="create the flow definition if missing and start one human loop per new prompt"
    )
    _flow_argument(start)
    start.add_argument("--work-team", required=True, metavar="ARN", help="the private work team (stack output)")
    start.add_argument(
        "--ui", required=True, metavar="ARN_OR_S3", help="the ranking HumanTaskUi ARN, or s3://BUCKET/KEY of a template"
    )
    start.add_argument("--role", required=True, metavar="ARN", help="the role the human loops assume")
    start.add_argument("--output", required=True, metavar="S3_URI", help="s3://BUCKET/PREFIX/ for the loops' output")
    start.add_argument(
        "--prompts", required=True, type=Path, metavar="JSONL", help='lines of {"prompt", "responses": [3]}'
    )
    start.add_argument("--kms-key", metavar="KEY", help="KMS key (ARN or id) that encrypts the output")
    start.add_argument("--task-count", type=positive_int, default=1, help="labelers per prompt, 1-3 (default: 1)")
    start.add_argument("--json", action="store_true", help="print JSON instead of text")
    start.set_defaults(run=_start)

    status = commands.add_parser("status", help="list the human loops of a flow definition and their states")
    _flow_argument(status)
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(run=_status)

    fetch = commands.add_parser("fetch", help="download each completed loop's output.json (input of genai align pairs)")
    _flow_argument(fetch)
    fetch.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for <loop name>.json files")
    fetch.set_defaults(run=_fetch)


def _flow_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--flow-definition-name",
        default=DEFAULT_FLOW_DEFINITION,
        metavar="NAME",
        help=f"the A2I flow definition (default: {DEFAULT_FLOW_DEFINITION})",
    )


def _fail(error: Exception) -> int:
    print(f"genai: error: {error}", file=sys.stderr)
    return 1


def _start(args: argparse.Namespace) -> int:
    from ..align import labeling
    from ..errors import DependencyError

    settings = labeling.FlowSettings(
        name=args.flow_definition_name,
        work_team_arn=args.work_team,
        ui=args.ui,
        role_arn=args.role,
        output_uri=args.output,
        kms_key_id=args.kms_key,
        task_count=args.task_count,
    )
    try:
        report = labeling.start(settings, args.prompts)
    except DependencyError as error:
        return _fail(error)
    if args.json:
        print(
            json.dumps(
                {
                    "flow_definition_arn": report.flow_definition_arn,
                    "created_flow_definition": report.created_flow_definition,
                    "started": report.started,
                    "existing": report.existing,
                    "duplicate_lines": report.duplicates,
                }
            )
        )
        return 0
    verb = "created" if report.created_flow_definition else "using"
    print(f"{verb} flow definition {report.flow_definition_arn}")
    print(f"started {len(report.started)} human loop(s), {len(report.existing)} already started")
    if report.duplicates:
        print(f"skipped duplicate prompt lines: {', '.join(map(str, report.duplicates))}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from ..align import labeling
    from ..errors import DependencyError

    try:
        loops = labeling.loop_statuses(labeling.flow_definition_arn(args.flow_definition_name))
    except DependencyError as error:
        return _fail(error)
    if args.json:
        print(json.dumps([loop.__dict__ for loop in loops]))
        return 0
    counts: dict[str, int] = {}
    for loop in loops:
        counts[loop.status] = counts.get(loop.status, 0) + 1
        reason = f"  {loop.failure_reason}" if loop.failure_reason else ""
        print(f"{loop.name}  {loop.status}  {loop.created}{reason}")
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no human loops"
    print(summary)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from ..align import labeling
    from ..errors import DependencyError

    try:
        report = labeling.fetch_outputs(labeling.flow_definition_arn(args.flow_definition_name), args.out)
    except DependencyError as error:
        return _fail(error)
    print(f"wrote {len(report.written)} output(s) to {args.out}; {len(report.pending)} loop(s) not completed")
    return 0
