"""Weight quantization: int8 on CPU through torchao, 4-bit GPTQ through gptqmodel (own extra)."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UsageError, require
from ..models.io import (
    HELD_OUT_TEXT,
    folder_bytes,
    load_causal_lm,
    max_logit_difference,
    perplexity,
    prepare_output_dir,
    read_texts,
    require_model_dir,
    write_report,
)


@dataclass(frozen=True)
class QuantizeReport:
    method: str
    bytes_before: int
    bytes_after: int
    perplexity_before: float
    perplexity_after: float
    max_logit_difference: float

    @property
    def size_ratio(self) -> float:
        return self.bytes_after / self.bytes_before


def quantize_int8(model_dir: str | Path, out: str | Path) -> QuantizeReport:
    """int8 weight-only quantization of the linear layers (runs on CPU); saves a loadable folder."""
    logging.getLogger("torchao").setLevel(logging.ERROR)  # it reports missing CUDA kernels on CPU hosts
    require("torchao", "runtime", "int8 quantization uses torchao")
    from torchao.quantization import Int8WeightOnlyConfig
    from transformers import TorchAoConfig

    model_dir = require_model_dir(model_dir)
    out = prepare_output_dir(out)
    reference, tokenizer = load_causal_lm(model_dir)
    quantized, _ = load_causal_lm(
        model_dir, quantization_config=TorchAoConfig(Int8WeightOnlyConfig()), device_map="cpu"
    )
    quantized.save_pretrained(out, safe_serialization=False)
    tokenizer.save_pretrained(out)
    reloaded, _ = load_causal_lm(out, device_map="cpu")
    report = QuantizeReport(
        method="int8-weight-only (torchao)",
        bytes_before=folder_bytes(model_dir),
        bytes_after=folder_bytes(out),
        perplexity_before=perplexity(reference, tokenizer, HELD_OUT_TEXT),
        perplexity_after=perplexity(reloaded, tokenizer, HELD_OUT_TEXT),
        max_logit_difference=max_logit_difference(reference, reloaded, tokenizer, HELD_OUT_TEXT),
    )
    write_report(out, "quantize", {**asdict(report), "size_ratio": report.size_ratio})
    return report


def quantize_gptq(
    model_dir: str | Path,
    out: str | Path,
    calibration: str | Path,
    *,
    bits: int = 4,
    sequence_length: int = 4096,
    group_size: int = 128,
) -> QuantizeReport:
    """4-bit GPTQ with the calibration texts the user names (book: 4 bits, sequence length 4096)."""
    if bits not in (2, 3, 4, 8):
        raise UsageError(f"--bits={bits}: GPTQ supports 2, 3, 4 or 8")
    if sequence_length < 16:
        raise UsageError(f"--sequence-length={sequence_length}: must be at least 16")
    texts = read_texts(Path(calibration), "--calibration", minimum=2)
    model_dir = require_model_dir(model_dir)
    # gptqmodel's CPU pool needs at least 2 workers (its loader sub-pool asks for 2).
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, os.cpu_count() or 2)))
    gptqmodel = require(
        "gptqmodel",
        "gptq",
        "GPTQ needs gptqmodel 7.6.x, which conflicts with the main "
        "environment (it builds from source and downgrades numpy): use a separate venv",
    )
    out = prepare_output_dir(out)
    config = gptqmodel.QuantizeConfig(bits=bits, group_size=group_size)
    model = gptqmodel.GPTQModel.load(str(model_dir), config)
    model.quantize([t[: sequence_length * 8] for t in texts])
    model.save(str(out))
    reference, tokenizer = load_causal_lm(model_dir)
    # Reload through gptqmodel (transformers would need optimum for GPTQ checkpoints).
    quantized = gptqmodel.GPTQModel.load(str(out)).model.eval()
    report = QuantizeReport(
        method=f"gptq-{bits}bit",
        bytes_before=folder_bytes(model_dir),
        bytes_after=folder_bytes(out),
        perplexity_before=perplexity(reference, tokenizer, HELD_OUT_TEXT),
        perplexity_after=perplexity(quantized, tokenizer, HELD_OUT_TEXT),
        max_logit_difference=max_logit_difference(reference, quantized, tokenizer, HELD_OUT_TEXT),
    )
    write_report(out, "quantize", asdict(report))
    return report
