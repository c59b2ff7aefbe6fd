"""Turn a fine-tuned model into a deployable artifact: merge, quantize, prune, distill, compile, package."""
