"""Typed LMI (DJL Serving) options, rendered as ``OPTION_*`` environment variables.

LMI reads ``option.<name>`` from ``serving.properties`` or, equivalently, ``OPTION_<NAME>``
from the environment. Both renderings come from the same object so the endpoint and a
locally generated ``serving.properties`` never disagree.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Literal

from . import lmi_engine
from ._validation import invalid, require_choice, require_int
from .instance_types import InstanceSpec

RollingBatch = Literal["auto", "vllm", "tnx", "disable"]
Dtype = Literal["auto", "fp16", "bf16", "fp32"]

ROLLING_BATCH_CHOICES: tuple[str, ...] = tuple(
    dict.fromkeys(lmi_engine.GPU_ROLLING_BATCH + lmi_engine.NEURON_ROLLING_BATCH)
)
DTYPE_CHOICES: tuple[str, ...] = lmi_engine.GPU_DTYPES
_EXTRA_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# Keys we render ourselves from the typed fields and the engine choice.
_RENDERED = ("entryPoint", "async_mode")

# SageMaker's ContainerStartupHealthCheckTimeoutInSeconds ceiling.
MAX_STARTUP_SECONDS = 3600


@dataclass(frozen=True, kw_only=True)
class LmiOptions:
    """LMI container options, rendered as ``OPTION_*`` variables and ``serving.properties``.

    :param model_id: hub id or ``s3://`` URI for LMI to fetch itself; unset when SageMaker downloads the artifact.
    :param tensor_parallel_degree: accelerators per model copy; ``None`` uses every GPU or NeuronCore.
    :param rolling_batch: ``auto`` (vLLM's async engine on GPU, ``tnx`` on Neuron), ``vllm``, ``tnx`` or ``disable``.
    :param max_rolling_batch_size: concurrent sequences (vLLM's ``max_num_seqs``; the Neuron compile batch).
    :param dtype: ``auto``, ``fp16``, ``bf16`` or ``fp32`` (Neuron: a fixed type).
    :param max_model_len: GPU: input + output tokens per sequence.
    :param n_positions: Neuron: the sequence length the graph is compiled for.
    :param compiled_graph_path: Neuron: where precompiled graphs live (``genai optimize package --compiled``).
    :param neuron_optimize_level: Neuron: neuronx-cc ``-O`` level, 1-3.
    :param model_loading_timeout: seconds LMI waits for the model to load.
    :param enable_lora: serve the adapters under ``adapters/`` by name (GPU).
    :param max_loras: adapters held on the accelerator at once (needs ``enable_lora``).
    :param max_lora_rank: the largest adapter rank served (needs ``enable_lora``).
    :param entry_point: a handler module that replaces LMI's engine; only with ``rolling_batch="disable"``.
    :param extra: further ``option.*`` keys, checked against the pinned engine's own option names.
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
    enable_lora: bool = False
    """Serve the LoRA adapters under the model's ``adapters/`` folder (requests pick one by name)."""
    max_loras: int | None = None
    """Adapters held on the accelerator at once (LMI's default: 4)."""
    max_lora_rank: int | None = None
    """The largest adapter rank to serve (vLLM's default: 16)."""
    entry_point: str | None = None
    """A handler module that replaces LMI's engine (e.g. ``genai_runtime.inference.lmi_handler``).
    Only with ``rolling_batch="disable"``: a rolling-batch engine sends its own per-request protocol,
    which a whole-request handler cannot answer. Leave unset to keep LMI's engine and continuous
    batching; ``genai optimize package`` then adds formatters for the book's request shape."""
    extra: dict[str, str] = field(default_factory=dict)
    """Further ``option.*`` keys the pinned engine reads (escape hatch), e.g. ``{"trust_remote_code": "true"}``;
    each is checked against that engine's own option names (``genai_contracts.lmi_engine``)."""

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
        if self.entry_point is not None:
            if not isinstance(self.entry_point, str) or not _MODULE.match(self.entry_point):
                raise invalid(
                    "options.entry_point",
                    self.entry_point,
                    "give a Python module path such as 'genai_runtime.inference.lmi_handler'.",
                )
            if self.entry_point not in lmi_engine.LMI_ENTRY_POINTS and self.rolling_batch != "disable":
                raise invalid(
                    "options.entry_point",
                    self.entry_point,
                    f"a custom handler replaces LMI's engine and works only with rolling_batch='disable' (with "
                    f"rolling_batch={self.rolling_batch!r} DJL sends its rolling-batch protocol, which the handler "
                    "cannot answer); set rolling_batch='disable', or drop entry_point and keep continuous batching "
                    "with the formatters `genai optimize package` writes.",
                )
        for name in ("max_loras", "max_lora_rank"):
            if getattr(self, name) is not None:
                require_int(f"options.{name}", getattr(self, name), minimum=1, maximum=1024)
                if not self.enable_lora:
                    raise invalid(f"options.{name}", getattr(self, name), "takes effect only with enable_lora=True.")
        if not isinstance(self.enable_lora, bool):
            raise invalid("options.enable_lora", self.enable_lora, "give True or False.")
        reserved = set(self._typed_options()) | set(_RENDERED)
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
            "enable_lora",
            "max_loras",
            "max_lora_rank",
            "entry_point",
        )

    def validate_for(self, spec: InstanceSpec, prop: str = "options") -> None:
        """Check the options against the instance type and the engine its pinned image runs."""
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
            if self.rolling_batch not in lmi_engine.GPU_ROLLING_BATCH:
                raise invalid(
                    f"{prop}.rolling_batch",
                    self.rolling_batch,
                    f"the GPU image's engine is vLLM; use one of {', '.join(lmi_engine.GPU_ROLLING_BATCH)} on "
                    f"{spec.instance_type} ('auto' is vLLM's async engine, LMI's default since v17).",
                )
        else:
            if self.rolling_batch not in lmi_engine.NEURON_ROLLING_BATCH:
                raise invalid(
                    f"{prop}.rolling_batch",
                    self.rolling_batch,
                    f"the Neuron image's engine is transformers-neuronx; use one of "
                    f"{', '.join(lmi_engine.NEURON_ROLLING_BATCH)} on {spec.instance_type}.",
                )
            if self.dtype not in lmi_engine.NEURON_DTYPES:
                raise invalid(f"{prop}.dtype", self.dtype, "Neuron compiles for a fixed type; use 'fp16' or 'bf16'.")
            if self.max_model_len is not None:
                raise invalid(
                    f"{prop}.max_model_len",
                    self.max_model_len,
                    "transformers-neuronx compiles for n_positions (input + output tokens); set n_positions on Neuron.",
                )
            if self.enable_lora:
                raise invalid(
                    f"{prop}.enable_lora",
                    self.enable_lora,
                    "the Neuron image serves no LoRA adapters; merge the adapter first "
                    "(genai optimize merge) or use a GPU instance type.",
                )
        known = lmi_engine.accepted_keys(spec.flavor)
        engine = "vLLM (LMI 27)" if spec.flavor == "lmi" else "transformers-neuronx (LMI 0.30 Neuron)"
        for key in self.extra:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise invalid(
                    f"{prop}.extra",
                    key,
                    f"the {engine} engine of {spec.instance_type} reads no such option and would "
                    f"ignore it without a word.{hint}",
                )

    def engine_options(self, spec: InstanceSpec) -> dict[str, str]:
        """The handler and batching keys, resolved the way LMI's own recommender would.

        GPU ``auto`` is what ``LmiConfigRecommender`` turns it into (``rolling_batch=disable``,
        ``async_mode=true``, the vLLM async service), written out so that a ``model.py`` in the
        model folder is only searched for formatters and never becomes the entry point (PyModel.java
        makes a ``model.py`` the entry point when none is set).
        """
        if self.entry_point is not None and self.entry_point not in lmi_engine.LMI_ENTRY_POINTS:
            return {"entryPoint": self.entry_point, "rolling_batch": "disable"}
        if spec.accelerator == "neuron":
            if self.rolling_batch == "disable":
                return {"entryPoint": lmi_engine.TRANSFORMERS_NEURONX_SERVICE, "rolling_batch": "disable"}
            return {"entryPoint": lmi_engine.TRANSFORMERS_NEURONX_SERVICE, "rolling_batch": "tnx"}
        if self.rolling_batch == "auto":
            return {"entryPoint": lmi_engine.VLLM_ASYNC_SERVICE, "async_mode": "true", "rolling_batch": "disable"}
        return {"entryPoint": lmi_engine.HUGGINGFACE_SERVICE, "rolling_batch": self.rolling_batch}

    def options(self, spec: InstanceSpec) -> dict[str, str]:
        """The ``option.*`` key/value pairs (without the prefix) for an instance type."""
        values: dict[str, str | int | None] = {
            "model_id": self.model_id,
            "tensor_parallel_degree": self.tensor_parallel_degree or spec.accelerator_count,
            **self.engine_options(spec),
            "max_rolling_batch_size": self.max_rolling_batch_size,
            "dtype": self.dtype,
            "max_model_len": self.max_model_len,
            "n_positions": self.n_positions,
            "compiled_graph_path": self.compiled_graph_path,
            "neuron_optimize_level": self.neuron_optimize_level,
            "model_loading_timeout": self.model_loading_timeout,
            "enable_lora": "true" if self.enable_lora else None,
            "max_loras": self.max_loras,
            "max_lora_rank": self.max_lora_rank,
        }
        rendered = {key: str(value) for key, value in values.items() if value is not None}
        rendered.update(self.extra)
        return rendered

    def to_environment(self, spec: InstanceSpec) -> dict[str, str]:
        """``OPTION_*`` environment variables for the LMI container."""
        # DJL maps OPTION_FOO back to option.foo, lower-cased, except OPTION_ENTRYPOINT -> entryPoint
        # (ModelInfo.loadServingProperties; test_model.update_properties_with_env_vars).
        return {f"OPTION_{key.upper()}": value for key, value in self.options(spec).items()}

    def to_serving_properties(self, spec: InstanceSpec, engine: str = "Python") -> str:
        """The same options as a ``serving.properties`` file."""
        lines = [f"engine={engine}"]
        lines += [f"option.{key}={value}" for key, value in self.options(spec).items()]
        return "\n".join(lines) + "\n"
