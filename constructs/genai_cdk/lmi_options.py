"""Typed LMI (DJL Serving) options, rendered as ``OPTION_*`` environment variables.

LMI reads ``option.<name>`` from ``serving.properties`` or, equivalently, ``OPTION_<NAME>``
from the environment. Both renderings come from the same object so the endpoint and a
locally generated ``serving.properties`` never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ._validation import invalid, require_choice, require_int
from .instance_types import InstanceSpec

RollingBatch = Literal["auto", "vllm", "lmi-dist", "tnx", "disable"]
Dtype = Literal["auto", "fp16", "bf16", "fp32"]

ROLLING_BATCH_CHOICES: tuple[str, ...] = ("auto", "vllm", "lmi-dist", "tnx", "disable")
DTYPE_CHOICES: tuple[str, ...] = ("auto", "fp16", "bf16", "fp32")
_GPU_ONLY_ROLLING_BATCH = ("lmi-dist",)
_NEURON_ONLY_ROLLING_BATCH = ("tnx",)
_EXTRA_KEY = re.compile(r"^[a-z][a-z0-9_]*$")

# SageMaker's ContainerStartupHealthCheckTimeoutInSeconds ceiling.
MAX_STARTUP_SECONDS = 3600


@dataclass(frozen=True, kw_only=True)
class LmiOptions:
    """LMI container options.

    ``tensor_parallel_degree=None`` uses every accelerator of the instance type (all GPUs or
    all NeuronCores), which is what one model per instance wants.
    """

    model_id: str | None = None
    """Hub id or ``s3://`` URI for LMI to fetch itself; leave unset when SageMaker downloads the
    artifact (``ModelArtifact``) to ``/opt/ml/model``."""
    tensor_parallel_degree: int | None = None
    rolling_batch: RollingBatch = "auto"
    max_rolling_batch_size: int = 32
    dtype: Dtype = "fp16"
    max_model_len: int | None = None
    n_positions: int | None = None
    """Neuron only: the sequence length the graph is compiled for (the book uses 4096)."""
    compiled_graph_path: str | None = None
    """Neuron only: where precompiled NEFF graphs live, so the endpoint skips compilation."""
    neuron_optimize_level: int | None = None
    """Neuron only: neuronx-cc ``-O`` level, 1-3."""
    model_loading_timeout: int = 1800
    """Seconds LMI waits for the model to load (download + compile + shard)."""
    extra: dict[str, str] = field(default_factory=dict)
    """Further ``option.*`` keys LMI understands (escape hatch), e.g. ``{"trust_remote_code": "true"}``."""

    def __post_init__(self) -> None:
        if self.tensor_parallel_degree is not None:
            require_int("options.tensor_parallel_degree", self.tensor_parallel_degree, minimum=1)
        require_choice("options.rolling_batch", self.rolling_batch, ROLLING_BATCH_CHOICES)
        require_int("options.max_rolling_batch_size", self.max_rolling_batch_size, minimum=1, maximum=1024)
        require_choice("options.dtype", self.dtype, DTYPE_CHOICES)
        for name in ("max_model_len", "n_positions"):
            value = getattr(self, name)
            if value is not None:
                require_int(f"options.{name}", value, minimum=16, maximum=1_048_576)
        if self.neuron_optimize_level is not None:
            require_int("options.neuron_optimize_level", self.neuron_optimize_level, minimum=1, maximum=3)
        require_int(
            "options.model_loading_timeout", self.model_loading_timeout, minimum=60, maximum=MAX_STARTUP_SECONDS
        )
        if self.model_id is not None and (not isinstance(self.model_id, str) or not self.model_id.strip()):
            raise invalid("options.model_id", self.model_id, "give a hub id or an s3:// URI, or leave it unset.")
        reserved = set(self._typed_options())
        for key, value in self.extra.items():
            if not isinstance(key, str) or not _EXTRA_KEY.match(key):
                raise invalid("options.extra", key, "keys are lower_snake_case option names without 'option.'.")
            if key in reserved:
                raise invalid("options.extra", key, f"set it through the typed field options.{key} instead.")
            if not isinstance(value, str):
                raise invalid(f"options.extra[{key!r}]", value, "values are strings, as LMI reads them.")

    @staticmethod
    def _typed_options() -> tuple[str, ...]:
        return (
            "model_id",
            "tensor_parallel_degree",
            "rolling_batch",
            "max_rolling_batch_size",
            "dtype",
            "max_model_len",
            "n_positions",
            "compiled_graph_path",
            "neuron_optimize_level",
            "model_loading_timeout",
        )

    def validate_for(self, spec: InstanceSpec, prop: str = "options") -> None:
        """Check the options against the instance type that will run them."""
        tp = self.tensor_parallel_degree
        if tp is not None and tp > spec.accelerator_count:
            unit = "NeuronCores" if spec.accelerator == "neuron" else "GPUs"
            raise invalid(
                f"{prop}.tensor_parallel_degree",
                tp,
                f"{spec.instance_type} has {spec.accelerator_count} {unit}; use at most "
                f"{spec.accelerator_count} or a larger instance type.",
            )
        if tp is not None and spec.accelerator_count % tp != 0:
            raise invalid(
                f"{prop}.tensor_parallel_degree",
                tp,
                f"must divide the {spec.accelerator_count} accelerators of {spec.instance_type} evenly.",
            )
        if spec.accelerator == "gpu":
            for name in ("n_positions", "compiled_graph_path", "neuron_optimize_level"):
                if getattr(self, name) is not None:
                    raise invalid(
                        f"{prop}.{name}",
                        getattr(self, name),
                        f"is a Neuron option but {spec.instance_type} is a GPU instance; "
                        "use max_model_len on GPU, or an ml.inf2/ml.trn1 instance type.",
                    )
            if self.rolling_batch in _NEURON_ONLY_ROLLING_BATCH:
                raise invalid(
                    f"{prop}.rolling_batch", self.rolling_batch,
                    f"'tnx' runs on Neuron only; use 'vllm', 'lmi-dist' or 'auto' on {spec.instance_type}.",
                )
        else:
            if self.rolling_batch in _GPU_ONLY_ROLLING_BATCH:
                raise invalid(
                    f"{prop}.rolling_batch", self.rolling_batch,
                    f"'lmi-dist' needs GPUs; use 'tnx', 'vllm' or 'auto' on {spec.instance_type}.",
                )
            if self.dtype == "auto":
                raise invalid(
                    f"{prop}.dtype", self.dtype, "Neuron compiles for a fixed type; use 'fp16' or 'bf16'."
                )

    def options(self, spec: InstanceSpec) -> dict[str, str]:
        """The ``option.*`` key/value pairs (without the prefix) for an instance type."""
        values: dict[str, str | int | None] = {
            "model_id": self.model_id,
            "tensor_parallel_degree": self.tensor_parallel_degree or spec.accelerator_count,
            "rolling_batch": self.rolling_batch,
            "max_rolling_batch_size": self.max_rolling_batch_size,
            "dtype": self.dtype,
            "max_model_len": self.max_model_len,
            "n_positions": self.n_positions,
            "compiled_graph_path": self.compiled_graph_path,
            "neuron_optimize_level": self.neuron_optimize_level,
            "model_loading_timeout": self.model_loading_timeout,
        }
        rendered = {key: str(value) for key, value in values.items() if value is not None}
        rendered.update(self.extra)
        return rendered

    def to_environment(self, spec: InstanceSpec) -> dict[str, str]:
        """``OPTION_*`` environment variables for the LMI container."""
        return {f"OPTION_{key.upper()}": value for key, value in self.options(spec).items()}

    def to_serving_properties(self, spec: InstanceSpec, engine: str = "Python") -> str:
        """The same options as a ``serving.properties`` file."""
        lines = [f"engine={engine}"]
        lines += [f"option.{key}={value}" for key, value in self.options(spec).items()]
        return "\n".join(lines) + "\n"
