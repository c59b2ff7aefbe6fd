"""``lambdas.agent_api`` under fuzzed API Gateway events, fuzzed InvokeAgent streams and injected failures.

InvokeAgent is answered at botocore's ``before-call`` level (moto has no InvokeAgent, and botocore's
``Stubber`` cannot express its event stream). A completion split anywhere, inside a UTF-8 character
too, must come back whole; client garbage gets a 4xx with a message, the agent's failures a 502 or 503.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import EventStreamError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genai_contracts.api_requests import MAX_INPUT_CHARS, InvokeRequest
from tests.lambda_events import CONTEXT, api_gateway_post

from . import tally
from .events import CONNECTION_ERRORS, aws_client, client_error, client_failures, proxy_events, stop_answering
from .events import answer_with as answer
from .strategies import anything, huge_text, json_text, mutated

SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)


def stream(text: str = "You have 3 open claims.", cuts: list[int] | None = None, extra: list | None = None) -> dict:
    data = text.encode()
    edges = sorted({0, len(data), *[c % (len(data) + 1) for c in (cuts or [])]})
    chunks = [{"chunk": {"bytes": data[a:b]}} for a, b in zip(edges, edges[1:], strict=False)]
    trace = {"trace": {"trace": {"orchestrationTrace": {"invocationInput": {"traceId": "trace-1"}}}}}
    return {"completion": [trace, *chunks, *(extra or [])], "contentType": "application/json", "sessionId": "s-1"}


@pytest.fixture
def agent(monkeypatch):
    from lambdas import agent_api

    monkeypatch.setenv("AGENT_ID", "ABCDEFGHIJ")
    monkeypatch.setenv("AGENT_ALIAS_ID", "KLMNOPQRST")
    client = aws_client("bedrock-agent-runtime")
    monkeypatch.setattr(agent_api, "agent_runtime", lambda: client)

    def reply(value) -> None:
        stop_answering(client, "InvokeAgent")
        answer(client, "InvokeAgent", value)

    reply(lambda: (200, stream()))
    return agent_api, reply


def call(module, event) -> dict:
    response = tally.run("agent_api", module.handler, event, CONTEXT)
    assert isinstance(response, dict) and isinstance(response["statusCode"], int), response
    body = json.loads(response["body"])
    if response["statusCode"] != 200:
        assert isinstance(body.get("message"), str) and body["message"], response
    return response


def retry_after(response: dict) -> str | None:
    values = (response.get("multiValueHeaders") or {}).get("Retry-After") or []
    return values[0] if values else (response.get("headers") or {}).get("Retry-After")


valid_body = st.fixed_dictionaries(
    {"inputText": st.text(min_size=1, max_size=30).filter(lambda t: t.strip() and t[0] not in " \t\n\r\x0b\x0c")},
    optional={"sessionId": st.from_regex(r"[0-9a-zA-Z._:-]{2,20}", fullmatch=True)},
)


@st.composite
def garbage_events(draw):
    body = draw(st.one_of(mutated(draw(valid_body), keys=["inputText", "sessionId"]), anything, huge_text))
    text = json_text(draw, body) if draw(st.integers(0, 4)) else draw(st.text(max_size=50))
    if draw(st.integers(0, 3)):
        return api_gateway_post("/invoke", text)
    return draw(proxy_events("/invoke", text))


@settings(SETTINGS, max_examples=700)
@given(event=garbage_events())
def test_client_garbage_gets_a_4xx_with_a_message_never_an_exception(agent, event):
    module, _ = agent
    response = call(module, event)
    assert response["statusCode"] in (200, 400, 404, 413), response
    if response["statusCode"] == 200 and not event.get("isBase64Encoded"):
        InvokeRequest.model_validate(json.loads(event["body"]))


@settings(SETTINGS, max_examples=250)
@given(
    text=st.text(min_size=1, max_size=60) | st.text(st.sampled_from("😀𝕏中é a"), min_size=1, max_size=30),
    cuts=st.lists(st.integers(0, 400), max_size=12),
)
def test_a_completion_split_anywhere_comes_back_whole(agent, text, cuts):
    module, reply = agent
    reply(lambda: (200, stream(text, cuts)))
    response = call(module, api_gateway_post("/invoke", {"inputText": "hi"}))
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["completion"] == text


def test_a_four_byte_character_split_over_chunks_is_decoded_once():
    from genai_runtime.agents.deployed import invoke_agent

    class Agent:
        def invoke_agent(self, **_):
            emoji = "😀".encode()
            return {
                "completion": [
                    {"chunk": {"bytes": b"ok " + emoji[:1]}},
                    {"chunk": {"bytes": emoji[1:3]}},
                    {"chunk": {"bytes": emoji[3:] + b"!"}},
                ]
            }

    assert invoke_agent("hi", "ABCDEFGHIJ", "TSTALIASID", "s-1", client=Agent()).completion == "ok 😀!"


def _mid_stream(code: str):
    def events():
        yield {"chunk": {"bytes": b"partial "}}
        raise EventStreamError({"Error": {"Code": code, "Message": "fuzzed"}}, "InvokeAgent")

    return {"completion": events(), "contentType": "application/json", "sessionId": "s-1"}


failures = st.one_of(
    client_failures.map(lambda f: ("call", f)),
    st.sampled_from(CONNECTION_ERRORS).map(lambda e: ("call", (e, None, 503))),
    st.sampled_from(
        [
            ("throttlingException", 503),
            ("serviceQuotaExceededException", 503),
            ("conflictException", 503),
            ("dependencyFailedException", 502),
            ("badGatewayException", 502),
            ("internalServerException", 502),
            ("accessDeniedException", 502),
            ("validationException", 502),
        ]
    ).flatmap(lambda f: st.sampled_from(["event", "raise"]).map(lambda how: (how, (f[0], None, f[1])))),
    st.just(("bytes", (b"\xff\xfe", None, 502))),
)


@settings(SETTINGS, max_examples=300)
@given(failure=failures, body=valid_body)
def test_agent_failures_are_a_502_or_503_with_a_message(agent, failure, body):
    module, reply = agent
    how, (what, http, status) = failure
    if how == "call":
        reply(what if isinstance(what, BaseException) else client_error(what, http))
    elif how == "event":
        reply(lambda: (200, stream(extra=[{what: {"message": "fuzzed"}}])))
    elif how == "raise":
        reply(lambda: (200, _mid_stream(what)))
    else:
        reply(lambda: (200, {"completion": [{"chunk": {"bytes": what}}], "sessionId": "s-1"}))
    response = call(module, api_gateway_post("/invoke", body))
    assert response["statusCode"] == status, (failure, response)
    assert (retry_after(response) is not None) == (status == 503), response


@settings(SETTINGS, max_examples=40)
@given(
    length=st.integers(MAX_INPUT_CHARS - 2, MAX_INPUT_CHARS + 2),
    char=st.sampled_from(["😀", "中", "é", '"', "\x01"]),
    ascii_only=st.booleans(),
)
def test_input_at_the_character_limit_is_never_refused_for_its_bytes(agent, length, char, ascii_only):
    module, _ = agent
    body = json.dumps({"inputText": "Q" + char * (length - 1)}, ensure_ascii=ascii_only)
    assert len(body.encode()) <= InvokeRequest.MAX_BODY_BYTES
    response = call(module, api_gateway_post("/invoke", body))
    if length <= MAX_INPUT_CHARS:
        assert response["statusCode"] == 200, response
    else:
        assert response["statusCode"] == 400
        assert f"at most {MAX_INPUT_CHARS} characters" in json.loads(response["body"])["message"]


@pytest.mark.parametrize(("agent_id", "alias"), [("", "KLMNOPQRST"), ("agent-1", "KLMNOPQRST"), ("ABCDEFGHIJ", "x")])
def test_a_misconfigured_function_is_a_500_with_a_message(agent, monkeypatch, agent_id, alias):
    module, _ = agent
    monkeypatch.setenv("AGENT_ID", agent_id)
    monkeypatch.setenv("AGENT_ALIAS_ID", alias)
    response = call(module, api_gateway_post("/invoke", {"inputText": "hi"}))
    assert response["statusCode"] == 500 and "misconfigured" in json.loads(response["body"])["message"]
