"""A tiny, randomly initialised causal LM with a tokenizer trained locally: no network needed.

Tests, benchmarks and the local demo use it wherever a real checkpoint is not available. The
architecture is real (a 2-layer Llama by default), so everything that works on it (generation,
LoRA, merging, pruning, quantization, serving) exercises the same code paths as a large model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

ARCHITECTURES = ("llama", "gpt2")
SPECIAL_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}

# Dialogue-summarization flavoured text, the book's running example, to train the tokenizer on.
CORPUS = [
    "Summarize the following conversation.",
    "#Person1#: Hi, how are you doing today? #Person2#: I am fine, thank you. I have a meeting at noon.",
    "#Person1#: Could you send me the report before Friday? #Person2#: Sure, I will email it tomorrow.",
    "#Person1#: What time does the train leave? #Person2#: It leaves at seven in the morning.",
    "The quick brown fox jumps over the lazy dog while the customer waits for the summary.",
    "Generative models answer questions, write summaries and follow instructions.",
    "Retrieval augmented generation adds relevant documents from a vector store to the prompt.",
    "Amazon SageMaker hosts large language models on Inferentia and GPU instances.",
    "Fine-tuning with LoRA trains a small adapter while the base model stays frozen.",
    "Dialogue: the manager asks the team to finish the project by the end of the month.",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 + - * / = ( ) , . ? ! : ; ' \"",
]


@dataclass(frozen=True)
class TinyModelSpec:
    arch: str = "llama"
    vocab_size: int = 512
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    context_length: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise UsageError(f"--arch={self.arch!r}: choose one of {', '.join(ARCHITECTURES)}")
        if self.hidden_size % self.heads:
            raise UsageError(f"hidden size {self.hidden_size} must be divisible by {self.heads} heads")
        if not 260 <= self.vocab_size <= 32_000:
            raise UsageError(f"vocab size {self.vocab_size} must lie in 260..32000 (256 bytes + special tokens)")


def train_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer trained on ``CORPUS`` (every byte is representable)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)


def build_tiny_model(spec: TinyModelSpec, tokenizer):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(spec.seed)
    if spec.arch == "llama":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=spec.hidden_size,
            intermediate_size=spec.hidden_size * 2,
            num_hidden_layers=spec.layers,
            num_attention_heads=spec.heads,
            num_key_value_heads=max(1, spec.heads // 2),
            max_position_embeddings=spec.context_length,
            tie_word_embeddings=False,
            **ids,
        )
        return LlamaForCausalLM(config)
    gpt2_config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=spec.hidden_size,
        n_layer=spec.layers,
        n_head=spec.heads,
        n_positions=spec.context_length,
        **ids,
    )
    return GPT2LMHeadModel(gpt2_config)


def write_tiny_model(out: str | Path, spec: TinyModelSpec | None = None) -> Path:
    """Write model weights, config, generation config and tokenizer to ``out``; return the folder."""
    spec = spec or TinyModelSpec()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out={out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"--out={out}: folder is not empty; choose a new folder")
    tokenizer = train_tokenizer(spec.vocab_size)
    model = build_tiny_model(spec, tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
