"""Inference: one core (``InferenceEngine``) behind the local server and the LMI handler."""
