"""Neuron compilation for Inferentia2 through optimum-neuron, for the endpoint that will load it.

LMI's transformers-neuronx engine runs a precompiled model only when its shapes match the endpoint:
batch = ``max_rolling_batch_size`` ("batch_size needs to match max_rolling_batch_size for precompiled
neuron models running rolling batch", djl_python/transformers_neuronx.py, djl-serving 0.30.0-dlc),
sequence = ``n_positions``, cores = ``tensor_parallel_degree``, dtype = ``dtype``. So the defaults come
from the same ``LmiOptions`` that ``LmiEndpoint`` renders, and ``compile_settings.json`` records them
for ``genai optimize package`` to check.

optimum-neuron pins its own transformers and needs the Neuron SDK, so it lives only in the
Neuron image. Arguments are validated against the instance type before anything is imported.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from genai_contracts.instance_types import instance_spec
from genai_contracts.lmi_engine import NEURON_DTYPES
from genai_contracts.lmi_options import LmiOptions

from ..errors import UsageError, require
from ..models.io import prepare_output_dir, require_model_dir

AUTO_CAST_TYPES = tuple(sorted(NEURON_DTYPES))  # the Neuron image's dtypes: the endpoint must run the same
SETTINGS_FILE = "compile_settings.json"
BOOK_SEQUENCE_LENGTH = 4096


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
            raise UsageError(
                f"--instance-type={self.instance_type}: a GPU instance; Neuron compiles for ml.inf2.* or ml.trn1.*"
            )
        if self.num_cores < 1 or self.num_cores > spec.accelerator_count:
            raise UsageError(
                f"--num-cores={self.num_cores}: {self.instance_type} has {spec.accelerator_count} "
                f"NeuronCores; use 1..{spec.accelerator_count}"
            )
        if spec.accelerator_count % self.num_cores:
            raise UsageError(
                f"--num-cores={self.num_cores}: must divide the {spec.accelerator_count} NeuronCores "
                f"of {self.instance_type}"
            )

    @classmethod
    def for_endpoint(
        cls,
        instance_type: str,
        *,
        batch_size: int | None = None,
        sequence_length: int | None = None,
        num_cores: int | None = None,
        auto_cast_type: str | None = None,
    ) -> CompileSettings:
        """Unset values default to what ``LmiOptions()`` renders for ``instance_type``."""
        try:
            spec = instance_spec(instance_type, "--instance-type")
        except ValueError as error:
            raise UsageError(str(error)) from None
        options = LmiOptions()
        return cls(
            batch_size=batch_size or options.max_rolling_batch_size,
            sequence_length=sequence_length or BOOK_SEQUENCE_LENGTH,
            num_cores=num_cores or options.tensor_parallel_degree or spec.accelerator_count,
            auto_cast_type=auto_cast_type or options.dtype,
            instance_type=instance_type,
        )

    def mismatches(self, options: LmiOptions, instance_type: str) -> list[str]:
        """How ``options`` on ``instance_type`` differ from the shapes these graphs were compiled for."""
        spec = instance_spec(instance_type)
        wanted = {
            "max_rolling_batch_size": (options.max_rolling_batch_size, self.batch_size),
            "n_positions": (options.n_positions, self.sequence_length),
            "tensor_parallel_degree": (options.tensor_parallel_degree or spec.accelerator_count, self.num_cores),
            "dtype": (options.dtype, self.auto_cast_type),
        }
        return [
            f"{name}={have} but the graphs were compiled for {compiled}"
            for name, (have, compiled) in wanted.items()
            if have != compiled
        ]


def read_settings(folder: str | Path) -> CompileSettings:
    path = Path(folder) / SETTINGS_FILE
    try:
        return CompileSettings(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as error:
        raise UsageError(
            f"--compiled={folder}: no readable {SETTINGS_FILE} ({error}); compile with "
            "`genai optimize compile`, which writes it"
        ) from None


def compile_for_neuron(model_dir: str | Path, out: str | Path, settings: CompileSettings) -> Path:
    model_dir = require_model_dir(model_dir)
    neuron = require(
        "optimum.neuron",
        "neuron",
        "Neuron compilation needs optimum-neuron and the Neuron SDK (neuronx-cc), which pin their own "
        "transformers; run it in the Neuron image (containers/training/neuron) or a Neuron DLC",
    )
    _require_export_api(neuron)
    out = prepare_output_dir(out)
    # The pre-0.4 export API: the pinned Neuron LMI image (SDK 2.20.1) loads what optimum-neuron 0.0.x,
    # built against the same compiler, writes ("compiled with the same Neuron compiler version").
    model = neuron.NeuronModelForCausalLM.from_pretrained(
        str(model_dir),
        export=True,
        batch_size=settings.batch_size,
        sequence_length=settings.sequence_length,
        num_cores=settings.num_cores,
        auto_cast_type=settings.auto_cast_type,
    )
    model.save_pretrained(out)
    (out / SETTINGS_FILE).write_text(json.dumps(asdict(settings), indent=2) + "\n")
    return out


def _require_export_api(neuron) -> None:
    import importlib.metadata

    version = importlib.metadata.version("optimum-neuron")
    if int(version.split(".")[0]) > 0 or int(version.split(".")[1]) >= 4:
        raise UsageError(
            f"optimum-neuron {version}: 0.4 removed from_pretrained(export=True, batch_size=, num_cores=) and "
            "compiles for Neuron SDKs newer than the pinned LMI Neuron image (SDK 2.20.1) can load; compile in "
            "that image or with optimum-neuron 0.0.24"
        )
