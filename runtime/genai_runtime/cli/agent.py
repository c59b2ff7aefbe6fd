"""``genai agent invoke|local``: a deployed Bedrock agent, or a ReAct/PAL loop on your own LLM."""

from __future__ import annotations

import argparse
import json


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("agent", help="agents: invoke a deployed Bedrock agent, or run ReAct/PAL locally")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    invoke = sub.add_parser("invoke", help="InvokeAgent on a deployed agent (prints the completion)")
    invoke.add_argument("text")
    invoke.add_argument("--agent-id", required=True)
    invoke.add_argument("--alias-id", required=True)
    invoke.add_argument("--session-id", help="continue a session (default: a new one)")
    invoke.add_argument("--json", action="store_true", help="print completion, session and trace ids as JSON")
    invoke.set_defaults(run=_invoke)

    local = sub.add_parser("local", help="a ReAct (or PAL) loop with your LLM and local tools")
    local.add_argument("question")
    local.add_argument(
        "--llm",
        required=True,
        metavar="URL_OR_MODEL",
        help="http(s)://HOST:PORT of genai serve, sagemaker:ENDPOINT or a Bedrock model id",
    )
    local.add_argument(
        "--mode",
        choices=("react", "pal"),
        default="react",
        help="react: tools in a loop (default); pal: one program, run in the arithmetic sandbox",
    )
    local.add_argument(
        "--claims-table",
        metavar="TABLE",
        help="give the agent the insurance-claims action group (lambdas.claims_action_group), backed by this "
        "DynamoDB table",
    )
    local.add_argument(
        "--action-group",
        metavar="MODULE",
        help="give the agent any action group: a module with ACTION_GROUP, handler(event, context) and "
        "openapi_schema(), e.g. your own Powertools BedrockAgentResolver Lambda",
    )
    local.add_argument("--max-steps", type=int, default=6, help="ReAct actions before giving up (default: 6)")
    local.add_argument("--max-new-tokens", type=int, default=256)
    local.set_defaults(run=_local)


# Loaded by name: the runtime defines the action-group protocol, lambdas/ implements it (never imported here).
CLAIMS_ACTION_GROUP = "lambdas.claims_action_group"


def _action_group(module_name: str):
    """``(name, openapi schema, handler)`` of an action-group module."""
    import importlib

    from ..errors import UsageError

    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(
            f"--action-group {module_name}: cannot import it ({error}); run from the repository root, or put "
            "the module on PYTHONPATH"
        ) from None
    missing = [name for name in ("ACTION_GROUP", "handler", "openapi_schema") if not hasattr(module, name)]
    if missing:
        raise UsageError(f"--action-group {module_name}: has no {', '.join(missing)}; see `genai agent local -h`")
    return module.ACTION_GROUP, module.openapi_schema(), module.handler


def _invoke(args: argparse.Namespace) -> int:
    from ..agents.deployed import invoke_agent

    reply = invoke_agent(args.text, args.agent_id, args.alias_id, args.session_id)
    if args.json:
        print(json.dumps(reply.to_json(), indent=2))
    else:
        print(reply.completion)
        print(f"(session {reply.session_id}; traces: {', '.join(reply.trace_ids) or 'none'})")
    return 0


def _local(args: argparse.Namespace) -> int:
    from ..agents.pal import pal
    from ..agents.react import react
    from ..agents.tools import action_group_tools, calculator_tool
    from ..errors import UsageError
    from ..rag.generate import GenerationSettings, generator_from_spec

    if not 1 <= args.max_steps <= 50:
        raise UsageError(f"--max-steps {args.max_steps} is invalid: give 1..50")
    llm = generator_from_spec(args.llm, GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.1))
    if args.mode == "pal":
        answer, program = pal(args.question, llm)
        print(program)
        print(f"\nAnswer: {answer}")
        return 0
    tools = [calculator_tool(llm)]
    module_name = args.action_group
    if args.claims_table:
        import os

        from genai_contracts.names import CLAIMS_TABLE

        os.environ[CLAIMS_TABLE] = args.claims_table
        module_name = module_name or CLAIMS_ACTION_GROUP
    if module_name:
        tools += action_group_tools(*_action_group(module_name))
    result = react(args.question, llm, tools, max_steps=args.max_steps)
    for step in result.steps:
        print(f"Thought: {step.thought}\nAction: {step.tool}[{step.tool_input}]\nObservation: {step.observation}\n")
    print(f"Answer: {result.answer}" if result.answer is not None else f"No answer after {args.max_steps} steps.")
    return 0 if result.answer is not None else 1
