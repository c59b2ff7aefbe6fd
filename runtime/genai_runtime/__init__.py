"""genai-cdk runtime: the code the training, optimization and inference containers run.

Heavy libraries (torch, transformers, peft) are imported where they are used, so ``genai --help``
and the construct library stay fast.
"""
