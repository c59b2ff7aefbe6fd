"""The ReAct loop: the model thinks, picks a tool and its input, reads the observation, repeats.

The prompt is the ReAct template the book uses through langchain (``hwchase17/react``). The loop
stops at ``Final Answer:``, after ``max_steps`` actions, or when the model names a tool that does not
exist (the observation tells it which exist and the loop goes on). Any LLM callable works: a
``genai serve`` URL, Bedrock, or a scripted fake in tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import UsageError

REACT_PROMPT = """Answer the following questions as best you can. You have access to the following tools:

{tools}

Use the following format:

Question: the input question you must answer
Thought: you should always think about what to do
Action: the action to take, should be one of [{tool_names}]
Action Input: the input to the action
Observation: the result of the action
... (this Thought/Action/Action Input/Observation can repeat N times)
Thought: I now know the final answer
Final Answer: the final answer to the original input question

Begin!

Question: {input}
Thought:{agent_scratchpad}"""

_ACTION = re.compile(r"Action\s*:\s*(?P<tool>.+?)\s*\n\s*Action\s*Input\s*:\s*(?P<input>.*)", re.DOTALL)
_FINAL = re.compile(r"Final\s+Answer\s*:\s*(?P<answer>.*)", re.DOTALL)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    run: Callable[[str], str]


@dataclass
class Step:
    thought: str
    tool: str
    tool_input: str
    observation: str


@dataclass
class AgentResult:
    answer: str | None
    steps: list[Step] = field(default_factory=list)
    stopped: str = "final_answer"  # or max_steps


def _observe(tools: dict[str, Tool], name: str, tool_input: str) -> str:
    tool = tools.get(name)
    if tool is None:
        return f"{name} is not a tool. Use one of: {', '.join(tools)}."
    try:
        return str(tool.run(tool_input))
    except Exception as error:  # noqa: BLE001 - a failing tool is an observation the model can act on
        return f"{name} failed: {type(error).__name__}: {error}"


def react(question: str, llm: Callable[[str], str], tools: Sequence[Tool], *, max_steps: int = 6) -> AgentResult:
    if not question.strip():
        raise UsageError("question is empty")
    if not tools:
        raise UsageError("a ReAct agent needs at least one tool")
    by_name = {tool.name: tool for tool in tools}
    prompt = REACT_PROMPT.format(
        tools="\n".join(f"{t.name}: {t.description}" for t in tools),
        tool_names=", ".join(by_name),
        input=question,
        agent_scratchpad="{scratchpad}",
    )
    scratchpad = ""
    result = AgentResult(None)
    for _ in range(max_steps):
        # Stop where the model would invent the observation itself.
        completion = llm(prompt.replace("{scratchpad}", scratchpad)).split("\nObservation:")[0]
        action = _ACTION.search(completion)
        final = _FINAL.search(completion)
        if final and (not action or final.start() < action.start()):
            result.answer = final["answer"].strip()
            return result
        if not action:
            observation = "Invalid format: give 'Action:' and 'Action Input:', or 'Final Answer:'."
            result.steps.append(Step(completion.strip(), "", "", observation))
            scratchpad += f"{completion}\nObservation: {observation}\nThought:"
            continue
        tool, tool_input = action["tool"].strip(), action["input"].strip().strip('"')
        observation = _observe(by_name, tool, tool_input)
        thought = completion[: action.start()].strip()
        result.steps.append(Step(thought, tool, tool_input, observation))
        scratchpad += f"{completion.rstrip()}\nObservation: {observation}\nThought:"
    result.stopped = "max_steps"
    return result
