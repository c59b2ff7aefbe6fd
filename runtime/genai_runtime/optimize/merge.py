"""Merge a LoRA adapter into its base model (``merge_and_unload``) and check it changed nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UsageError
from ..models.io import HELD_OUT_TEXT, load_causal_lm, max_logit_difference, prepare_output_dir, write_report

TOLERANCE = 1e-4


@dataclass(frozen=True)
class MergeReport:
    base: str
    adapter: str
    out: str
    max_logit_difference: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_logit_difference <= self.tolerance


def merge_adapter(base: str | Path, adapter: str | Path, out: str | Path) -> MergeReport:
    from peft import PeftModel

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise UsageError(f"--adapter={adapter}: not a PEFT adapter folder (no adapter_config.json)")
    out = prepare_output_dir(out)
    model, tokenizer = load_causal_lm(base)
    with_adapter = PeftModel.from_pretrained(model, adapter).eval()
    reference, _ = load_causal_lm(base)
    reference = PeftModel.from_pretrained(reference, adapter).eval()
    merged = with_adapter.merge_and_unload()
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    difference = max_logit_difference(reference, merged, tokenizer, HELD_OUT_TEXT)
    report = MergeReport(str(base), str(adapter), str(out), difference, TOLERANCE)
    write_report(out, "merge", {**asdict(report), "ok": report.ok})
    if not report.ok:
        raise UsageError(f"merged logits differ from the adapter model's by {difference:.2e} (> {TOLERANCE})")
    return report
