"""Agents: ReAct and PAL loops that run locally with any LLM callable, and the deployed Bedrock agent.

pal       program-aided language models: generated Python, evaluated as arithmetic only
react     the ReAct loop (thought, action, observation) over tools
tools     tools from the action-group handlers, called locally with Bedrock's event shape
deployed  InvokeAgent on a deployed agent: the streamed completion and its trace ids
"""
