"""Neuron compilation for Inferentia2 through optimum-neuron (book: batch 1, sequence 4096,
auto-cast fp16, cores = the NeuronCores used for tensor parallelism).

optimum-neuron pins its own transformers and needs the Neuron SDK, so it lives only in the
Neuron image. Arguments are validated against the instance type before anything is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genai_cdk.instance_types import instance_spec

from ..errors import UsageError, require
from ..models.io import prepare_output_dir, require_model_dir

AUTO_CAST_TYPES = ("bf16", "fp16", "fp32")


@dataclass(frozen=True)
class CompileSettings:
    batch_size: int
    sequence_length: int
    num_cores: int
    auto_cast_type: str
    instance_type: str

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"--batch-size={self.batch_size}: must be at least 1")
        if not 16 <= self.sequence_length <= 131_072:
            raise UsageError(f"--sequence-length={self.sequence_length}: must lie in 16..131072")
        if self.auto_cast_type not in AUTO_CAST_TYPES:
            raise UsageError(f"--auto-cast-type={self.auto_cast_type}: choose one of {', '.join(AUTO_CAST_TYPES)}")
        try:
            spec = instance_spec(self.instance_type, "--instance-type")
        except ValueError as error:
            raise UsageError(str(error)) from None
        if spec.accelerator != "neuron":
            raise UsageError(f"--instance-type={self.instance_type}: a GPU instance; Neuron compiles for "
                             "ml.inf2.* or ml.trn1.*")
        if self.num_cores < 1 or self.num_cores > spec.accelerator_count:
            raise UsageError(f"--num-cores={self.num_cores}: {self.instance_type} has {spec.accelerator_count} "
                             f"NeuronCores; use 1..{spec.accelerator_count}")
        if spec.accelerator_count % self.num_cores:
            raise UsageError(f"--num-cores={self.num_cores}: must divide the {spec.accelerator_count} NeuronCores "
                             f"of {self.instance_type}")


def compile_for_neuron(model_dir: str | Path, out: str | Path, settings: CompileSettings) -> Path:
    model_dir = require_model_dir(model_dir)
    neuron = require("optimum.neuron", "neuron",
                     "Neuron compilation needs optimum-neuron and the Neuron SDK (neuronx-cc), which pin their own "
                     "transformers; run it in the Neuron image (containers/training/neuron) or a Neuron DLC")
    out = prepare_output_dir(out)
    model = neuron.NeuronModelForCausalLM.from_pretrained(
        str(model_dir), export=True, batch_size=settings.batch_size, sequence_length=settings.sequence_length,
        num_cores=settings.num_cores, auto_cast_type=settings.auto_cast_type,
    )
    model.save_pretrained(out)
    return out
