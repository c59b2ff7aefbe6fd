"""Tools for local agents: action-group handlers called with Bedrock's own event shape, and PAL.

A Powertools ``BedrockAgentResolver`` app exposes its operations in its OpenAPI schema; each
operation becomes a tool whose input is a JSON object of the operation's parameters. The tool builds
the exact event a Bedrock agent sends the Lambda and returns the response body the Lambda returns.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from .react import Tool

HTTP_METHODS = ("get", "post", "put", "delete", "patch")


def agent_event(
    action_group: str,
    api_path: str,
    method: str,
    parameters: dict,
    body: dict | None,
    input_text: str = "",
    session_id: str | None = None,
) -> dict:
    """The event Bedrock sends an action-group Lambda for an OpenAPI operation."""
    event = {
        "messageVersion": "1.0",
        "agent": {"name": "local", "id": "LOCAL", "alias": "TSTALIASID", "version": "DRAFT"},
        "inputText": input_text,
        "sessionId": session_id or uuid.uuid4().hex,
        "actionGroup": action_group,
        "apiPath": api_path,
        "httpMethod": method.upper(),
        "parameters": [{"name": k, "type": _type(v), "value": str(v)} for k, v in parameters.items()],
        "sessionAttributes": {},
        "promptSessionAttributes": {},
    }
    if body is not None:
        event["requestBody"] = {
            "content": {
                "application/json": {
                    "properties": [{"name": k, "type": _type(v), "value": str(v)} for k, v in body.items()]
                }
            }
        }
    return event


def _type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "integer" if isinstance(value, int) else "number" if isinstance(value, float) else "string"


def action_group_tools(action_group: str, schema: dict, handler: Callable[[dict, object], dict]) -> list[Tool]:
    """One tool per operation of ``schema``; ``handler`` is the Lambda entry point."""
    tools = []
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in HTTP_METHODS:
                continue
            in_query = {p["name"] for p in operation.get("parameters", [])}

            def run(tool_input: str, path=path, method=method, in_query=in_query) -> str:
                arguments = json.loads(tool_input) if tool_input.strip() else {}
                if not isinstance(arguments, dict):
                    raise ValueError("give the input as a JSON object of parameters")
                parameters = {k: v for k, v in arguments.items() if k in in_query}
                body = {k: v for k, v in arguments.items() if k not in in_query} if method != "get" else None
                response = handler(agent_event(action_group, path, method, parameters, body), None)["response"]
                content = next(iter(response["responseBody"].values()))["body"]
                return f"HTTP {response['httpStatusCode']}: {content}"

            body_schema = _resolve(
                schema,
                operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}),
            )
            names = sorted(in_query) + sorted(body_schema.get("properties", {}))
            description = (operation.get("description") or operation.get("summary") or path).strip()
            tools.append(
                Tool(
                    operation.get("operationId", f"{method}_{path}"),
                    f"{description} Input: a JSON object with {', '.join(names) or 'no keys'}.",
                    run,
                )
            )
    return tools


def _resolve(schema: dict, node: dict) -> dict:
    """Follow a local ``$ref`` (``#/components/schemas/Name``)."""
    reference = node.get("$ref", "")
    if not reference.startswith("#/"):
        return node
    target = schema
    for part in reference[2:].split("/"):
        target = target.get(part, {})
    return target


def calculator_tool(llm: Callable[[str], str]) -> Tool:
    """PAL as a ReAct tool: the model writes a program for the math question; the sandbox runs it."""
    from .pal import pal

    return Tool(
        "Calculator",
        "Useful for arithmetic and word problems. Input: the math question.",
        lambda question: str(pal(question, llm)[0]),
    )
