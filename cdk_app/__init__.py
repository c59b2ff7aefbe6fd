"""The deployable genai-cdk app: one set of stacks per environment (dev, staging, prod)."""
