"""GPU/accelerator memory needed to load or train a model, after the book's chapter-4 table.

Loading takes the bytes per parameter of the dtype (4 for fp32, 2 for fp16/bf16, 1 for int8,
0.5 for 4-bit). Full fine-tuning with Adam adds about 20 bytes per parameter at fp32 for
gradients, optimizer states, activations and temporaries (the book's "~24 bytes per parameter"
in total), so training costs roughly six times the fp32 load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from ..errors import UsageError

BYTES_PER_PARAMETER = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5}
TRAINING_OVERHEAD_FP32 = 20.0  # Adam states (8) + gradients (4) + activations/temporaries (~8)
Mode = Literal["infer", "train"]
GIB = 1024**3


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: float
    dtype: str
    mode: str
    bytes_per_parameter: float
    total_bytes: float

    @property
    def gib(self) -> float:
        return self.total_bytes / GIB

    def as_dict(self) -> dict:
        return {**asdict(self), "gib": round(self.gib, 2)}


def estimate_memory(parameters: float, dtype: str = "fp32", mode: Mode = "infer") -> MemoryEstimate:
    """Bytes to hold ``parameters`` weights in ``dtype`` (infer) or to fully fine-tune them (train)."""
    if not parameters or parameters <= 0:
        raise UsageError(f"--params={parameters!r}: give the parameter count, e.g. 7e9")
    if dtype not in BYTES_PER_PARAMETER:
        raise UsageError(f"--dtype={dtype!r}: choose one of {', '.join(BYTES_PER_PARAMETER)}")
    if mode not in ("infer", "train"):
        raise UsageError(f"--mode={mode!r}: choose infer or train")
    per_parameter = BYTES_PER_PARAMETER[dtype]
    if mode == "train":
        # The overhead scales with the training precision the same way the weights do.
        per_parameter += TRAINING_OVERHEAD_FP32 * per_parameter / BYTES_PER_PARAMETER["fp32"]
    return MemoryEstimate(parameters, dtype, mode, per_parameter, parameters * per_parameter)
