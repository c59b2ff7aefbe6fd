"""Hypothesis fuzz tests of the Lambda handlers: events built from the real shapes, then mutated."""
