"""PAL's sandbox, the ReAct loop over the claims action group (moto), and the deployed agent."""

from __future__ import annotations

import json

import boto3
import pytest

from genai_runtime.agents.pal import SandboxError, extract_program, pal, run_program
from genai_runtime.agents.react import Tool, react
from genai_runtime.agents.tools import action_group_tools, calculator_tool
from genai_runtime.errors import UsageError
from tests.lambda_events import CONTEXT, api_gateway_post

from .conftest import stub_operation

BAGELS = '''def solution():
    """Olivia has $23. She bought five bagels for $3 each. How much money does she have left?"""
    money_initial = 23
    bagels = 5
    bagel_cost = 3
    money_spent = bagels * bagel_cost
    money_left = money_initial - money_spent
    result = money_left
    return result
'''


def test_pal_runs_the_books_program_and_plain_arithmetic():
    assert run_program(BAGELS) == 8
    assert run_program("a = 7\nb = a // 2\nc = a % 2\nd = 2 ** 10\ne = sqrt(16.0)\nanswer = b + c + d + e") == 1032.0
    assert run_program("x = 1.5\nx *= 4\nx -= 1") == 5.0
    assert run_program("price = 20\ntip = price * 15 / 100\nreturn price + tip".replace("return", "total =")) == 23.0


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("import os\nresult = 1", "Import is not allowed"),
        ("result = __import__('os')", "call to __import__"),
        ("result = open('/etc/passwd')", "call to open"),
        ("x = 1\nresult = x.real", "attribute access"),
        ("x = (1).__class__", "attribute access"),
        ("result = [1, 2][0]", "subscripts"),
        ("result = [1, 2]", "List is not arithmetic"),
        ("result = 'text'", "only numbers are allowed"),
        ("result = y + 1", "used before it is assigned"),
        ("for i in range(3):\n    pass", "For is not allowed"),
        ("while True:\n    pass", "While is not allowed"),
        ("f = lambda: 1", "Lambda is not arithmetic"),
        ("result = 2 ** 100000", "exponent 100000 is too large"),
        ("result = 1 / 0.0", "cannot be computed: float division by zero"),
        ("result = exp(1000.0)", "not a finite number"),
        ("def solution(x):\n    return x", "must take no arguments"),
        ("result = (", "does not parse"),
        ("x = 1 if True else 2", "IfExp is not arithmetic"),
        ("result = exec('1')", "call to exec"),
        ("result = sqrt(x=4)", "call to sqrt"),
    ],
)
def test_pal_sandbox_refuses_anything_but_arithmetic(code, message):
    with pytest.raises(SandboxError, match=message):
        run_program(code)


def test_pal_extracts_the_program_from_a_completion():
    completion = f"```python\n{BAGELS}```\nThe answer is 8."
    assert run_program(extract_program(completion)) == 8
    answer, program = pal(
        "Olivia has $23...",
        lambda prompt: "\n\ndef solution():\n    result = 23 - 5 * 3\n    return result\n\n\nQ: next question",
    )
    assert answer == 8 and "Q:" not in program


class Scripted:
    """An LLM that answers from a script, recording the prompts it saw."""

    def __init__(self, *completions: str) -> None:
        self.completions = list(completions)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.completions.pop(0)


def test_react_calls_the_claims_action_group_locally_and_answers(claims_table):
    from lambdas.claims_action_group import ACTION_GROUP, handler, openapi_schema

    tools = action_group_tools(ACTION_GROUP, openapi_schema(), lambda event, _: handler(event, CONTEXT))
    assert [t.name for t in tools] == ["getAllOpenClaims", "sendReminders"]
    llm = Scripted(
        " I need the open claims.\nAction: getAllOpenClaims\nAction Input: {}\nObservation: (made up)",
        ' Now remind the holders renewing soon.\nAction: sendReminders\nAction Input: {"days": 30}',
        " I now know the final answer\nFinal Answer: 3 open claims; reminders sent to A945123 and A987654.",
    )
    result = react("Which claims are open? Remind policies renewing within 30 days.", llm, tools)
    assert result.answer == "3 open claims; reminders sent to A945123 and A987654."
    assert [s.tool for s in result.steps] == ["getAllOpenClaims", "sendReminders"]
    assert result.steps[0].observation.startswith("HTTP 200: ") and "claim-006" in result.steps[0].observation
    assert '"policyHolderIds":["A945123","A987654"]' in result.steps[1].observation.replace(" ", "")
    assert "(made up)" not in llm.prompts[1]  # the loop cut the invented observation
    assert "Observation: HTTP 200" in llm.prompts[1]
    assert "getAllOpenClaims: Gets the list of all open insurance claims" in llm.prompts[0]


def test_react_reports_unknown_tools_bad_format_and_stops_after_max_steps():
    echo = Tool("Echo", "repeats", lambda text: text)
    llm = Scripted("Action: Search\nAction Input: x", "I am confused", "Action: Echo\nAction Input: hi")
    result = react("q", llm, [echo], max_steps=3)
    assert result.answer is None and result.stopped == "max_steps"
    assert result.steps[0].observation == "Search is not a tool. Use one of: Echo."
    assert result.steps[1].observation.startswith("Invalid format")
    assert result.steps[2].observation == "hi"
    with pytest.raises(UsageError, match="needs at least one tool"):
        react("q", llm, [])


def test_react_uses_pal_as_its_calculator():
    llm = Scripted(
        "Action: Calculator\nAction Input: What is 12 times 7 plus 3?",
        "```python\nresult = 12 * 7 + 3\n```",  # the calculator's own call to the LLM, for the program
        "Final Answer: 87",
    )
    result = react("What is 12 times 7 plus 3?", llm, [calculator_tool(llm)])
    assert result.steps[0].observation == "87" and result.answer == "87"


def agent_runtime():
    return boto3.client(
        "bedrock-agent-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


STREAM = {
    "completion": [
        {"trace": {"trace": {"orchestrationTrace": {"invocationInput": {"traceId": "trace-1-0"}}}}},
        {"chunk": {"bytes": b"You have 3 open "}},
        {"trace": {"trace": {"orchestrationTrace": {"observation": {"traceId": "trace-1-0"}}}}},
        {"chunk": {"bytes": b"claims."}},
    ],
    "contentType": "application/json",
    "sessionId": "session-1",
}


def test_invoke_agent_assembles_the_stream_and_collects_trace_ids():
    from genai_runtime.agents.deployed import invoke_agent

    client, requests = agent_runtime(), []
    stub_operation(client, "InvokeAgent", STREAM, requests)
    reply = invoke_agent("How many open claims?", "ABCDEFGHIJ", "TSTALIASID", "session-1", client=client)
    assert reply.completion == "You have 3 open claims." and reply.trace_ids == ["trace-1-0"]
    assert requests[0]["url_path"].endswith("/agents/ABCDEFGHIJ/agentAliases/TSTALIASID/sessions/session-1/text")
    assert json.loads(requests[0]["body"]) == {"enableTrace": True, "inputText": "How many open claims?"}
    with pytest.raises(UsageError, match="agent_id='agent-1' is invalid"):
        invoke_agent("hi", "agent-1", "TSTALIASID", client=client)


def api_event(body) -> dict:
    return api_gateway_post("/invoke", body)


@pytest.fixture
def agent_api(monkeypatch):
    from lambdas import agent_api

    monkeypatch.setenv("AGENT_ID", "ABCDEFGHIJ")
    monkeypatch.setenv("AGENT_ALIAS_ID", "KLMNOPQRST")
    client, requests = agent_runtime(), []
    stub_operation(client, "InvokeAgent", STREAM, requests)
    monkeypatch.setattr(agent_api, "agent_runtime", lambda: client)
    return agent_api, requests


def test_agent_api_returns_the_completion_with_its_trace_ids(agent_api):
    module, requests = agent_api
    response = module.handler(api_event({"inputText": "How many open claims?", "sessionId": "session-1"}), CONTEXT)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {
        "completion": "You have 3 open claims.",
        "sessionId": "session-1",
        "traceIds": ["trace-1-0"],
        "citations": [],
    }
    assert "/agentAliases/KLMNOPQRST/" in requests[0]["url_path"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "has no body"),
        ("nope", "not JSON"),
        ({}, "inputText: Field required"),
        ({"inputText": " "}, "inputText: String should match pattern"),
        ({"inputText": 5}, "valid string"),
        ({"inputText": "hi", "sessionId": "a b"}, "sessionId"),
        ({"inputText": "hi", "agentId": "x"}, "Extra inputs"),
    ],
)
def test_agent_api_bad_requests_get_400(agent_api, body, message):
    module, _ = agent_api
    response = module.handler(api_event(body), CONTEXT)
    assert response["statusCode"] == 400 and message in json.loads(response["body"])["message"]


def test_cli_agent_local_pal_with_a_served_llm_and_bad_arguments(capsys):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from genai_runtime.cli import main

    class Llm(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            data = json.dumps([{"generated_text": "def solution():\n    result = 6 * 7\n    return result\n"}]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Llm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert (
            main(
                [
                    "agent",
                    "local",
                    "What is six times seven?",
                    "--mode",
                    "pal",
                    "--llm",
                    f"http://127.0.0.1:{server.server_port}",
                ]
            )
            == 0
        )
    finally:
        server.shutdown()
    assert capsys.readouterr().out.rstrip().endswith("Answer: 42")
    assert main(["agent", "invoke", "hi", "--agent-id", "bad", "--alias-id", "TSTALIASID"]) == 2
    assert "agent_id='bad' is invalid" in capsys.readouterr().err
    assert main(["agent", "local", "q", "--llm", "claude"]) == 2
    assert "generate='claude' is invalid" in capsys.readouterr().err
