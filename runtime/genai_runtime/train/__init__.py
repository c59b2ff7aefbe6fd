"""Fine-tuning: instruction datasets, full/LoRA/QLoRA/prompt tuning, FSDP and Neuron, evaluation."""
