"""A deployed Bedrock agent: ``InvokeAgent`` with a session, the streamed completion assembled."""

from __future__ import annotations

import codecs
import re
import uuid
from dataclasses import dataclass, field

from genai_contracts.api_requests import MAX_INPUT_CHARS, SESSION_ID_PATTERN

from .. import aws
from ..errors import DependencyError, UsageError

_AGENT_ID = re.compile(r"^[0-9a-zA-Z]{10}$")
_ALIAS_ID = re.compile(r"^(TSTALIASID|[0-9a-zA-Z]{10})$")
_SESSION_ID = re.compile(SESSION_ID_PATTERN)


@dataclass
class AgentReply:
    completion: str
    session_id: str
    trace_ids: list[str] = field(default_factory=list)
    citations: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "completion": self.completion,
            "sessionId": self.session_id,
            "traceIds": self.trace_ids,
            "citations": self.citations,
        }


def validate(agent_id: str, alias_id: str, session_id: str, text: str) -> None:
    if not isinstance(agent_id, str) or not _AGENT_ID.match(agent_id):
        raise UsageError(f"agent_id={agent_id!r} is invalid: a Bedrock agent id is 10 letters or digits")
    if not isinstance(alias_id, str) or not _ALIAS_ID.match(alias_id):
        raise UsageError(f"alias_id={alias_id!r} is invalid: 10 letters or digits, or TSTALIASID")
    if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
        raise UsageError(f"session_id={session_id!r} is invalid: 2-100 of letters, digits and ._:-")
    if not isinstance(text, str) or not text.strip():
        raise UsageError("input text is empty: ask the agent something")
    if len(text) > MAX_INPUT_CHARS:
        raise UsageError(f"input text has {len(text)} characters; the limit is {MAX_INPUT_CHARS}")


def invoke_agent(
    text: str, agent_id: str, alias_id: str, session_id: str | None = None, client=None, enable_trace: bool = True
) -> AgentReply:
    session_id = session_id or uuid.uuid4().hex
    validate(agent_id, alias_id, session_id, text)
    if client is None:
        client = aws.client("bedrock-agent-runtime")
    response = client.invoke_agent(
        agentId=agent_id, agentAliasId=alias_id, sessionId=session_id, inputText=text, enableTrace=enable_trace
    )
    reply = AgentReply("", response.get("sessionId", session_id))
    # A chunk boundary may fall inside a UTF-8 character: decode the stream, not each chunk.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    pieces = []
    try:
        for event in response["completion"]:
            if "chunk" in event:
                pieces.append(decoder.decode(event["chunk"].get("bytes", b"")))
                reply.citations.extend(event["chunk"].get("attribution", {}).get("citations", []))
            elif "trace" in event:
                trace_id = _trace_id(event["trace"].get("trace", {}))
                if trace_id and trace_id not in reply.trace_ids:
                    reply.trace_ids.append(trace_id)
            else:  # throttlingException, dependencyFailedException... arrive as events mid-stream
                failed = [name for name in event if name.endswith("Exception")]
                if failed:
                    detail = event[failed[0]]
                    message = detail.get("message", detail) if isinstance(detail, dict) else detail
                    lowered = failed[0].lower()
                    raise DependencyError(
                        f"the agent: {failed[0]}: {message}",
                        service="bedrock-agent-runtime",
                        code=failed[0],
                        retryable=lowered in aws.THROTTLED_CODES or lowered in aws.UNAVAILABLE_CODES,
                    )
        pieces.append(decoder.decode(b"", final=True))
    except UnicodeDecodeError as error:
        raise DependencyError(
            f"the agent answered text that is not UTF-8: {error}", service="bedrock-agent-runtime"
        ) from None
    reply.completion = "".join(pieces)
    return reply


def _trace_id(trace: dict) -> str | None:
    """The ``traceId`` inside whichever trace part this event carries."""
    for part in trace.values():
        if isinstance(part, dict):
            for inner in part.values():
                if isinstance(inner, dict) and "traceId" in inner:
                    return inner["traceId"]
            if "traceId" in part:
                return part["traceId"]
    return None
