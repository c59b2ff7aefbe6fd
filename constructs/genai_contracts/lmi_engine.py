"""What the pinned LMI engines accept: the one home of their option keys and entry points.

Each set is read off the engine's own source (quoted per set); ``tests/unit/test_lmi_engine.py``
re-reads the DJL Serving 0.36.0 properties classes from ``shared/harness`` and fails when they drift.
``LmiOptions`` refuses any key outside these sets, because LMI itself drops unknown keys silently
(``VllmRbProperties.get_additional_vllm_engine_args`` keeps only vLLM ``EngineArgs`` names).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

VLLM_ASYNC_SERVICE = "djl_python.lmi_vllm.vllm_async_service"
"""The vLLM handler LMI v17+ runs for ``rolling_batch=auto`` on GPU (LmiConfigRecommender sets
``option.async_mode=true`` and ``rolling_batch=disable``; PyModel picks this module)."""
HUGGINGFACE_SERVICE = "djl_python.huggingface"
"""LMI's legacy handler: vLLM's synchronous rolling batch for ``rolling_batch=vllm``."""
TRANSFORMERS_NEURONX_SERVICE = "djl_python.transformers_neuronx"
"""The Neuron image's handler (tnx_user_guide.md quick start: ``option.entryPoint=djl_python.transformers_neuronx``)."""
LMI_ENTRY_POINTS = (VLLM_ASYNC_SERVICE, HUGGINGFACE_SERVICE, TRANSFORMERS_NEURONX_SERVICE)

# djl_python/properties_manager/properties.py, class Properties (DJL Serving 0.36.0-lmi27-dlc, 7e13b08).
PROPERTIES_FIELDS = frozenset(
    {
        "model_id_or_path",
        "model_dir",
        "rolling_batch",
        "tensor_parallel_degree",
        "cluster_size",
        "trust_remote_code",
        "enable_streaming",
        "batch_size",
        "max_rolling_batch_size",
        "dtype",
        "revision",
        "output_formatter",
        "input_formatter",
        "waiting_steps",
        "mpi_mode",
        "tgi_compat",
        "bedrock_compat",
        "enable_lora",
        "lmcache_auto_config",
        "draft_model_id",
        "spec_length",
    }
)
# djl_python/properties_manager/vllm_rb_properties.py, class VllmRbProperties (same commit), with its aliases.
VLLM_RB_PROPERTIES_FIELDS = frozenset(
    {
        "engine",
        "tensor_parallel_degree",
        "pipeline_parallel_degree",
        "quantize",
        "max_rolling_batch_prefill_tokens",
        "cpu_offload_gb_per_gpu",
        "dtype",
        "max_loras",
        "task",
        "long_lora_scaling_factors",
        "enable_auto_tool_choice",
        "tool_call_parser",
        "enable_reasoning",
        "reasoning_parser",
        "device",
        "normalize",
        "chat_template",
        "chat_template_content_format",
    }
)
VLLM_RB_ALIASES = frozenset({"quantization", "max_num_batched_tokens", "cpu_offload_gb"})
# Keys the Java frontend reads (serving/docs/lmi/deployment_guide/configurations.md, "LMI Common
# Configurations"; PyModel.java reads entryPoint and async_mode) and keys the vLLM service reads
# from its properties directly (lmi_vllm/vllm_async_service.py: lmcache_config_file,
# enable_stateful_sessions).
LMI_SERVER_KEYS = frozenset(
    {
        "model_id",
        "entryPoint",
        "async_mode",
        "parallel_loading",
        "model_loading_timeout",
        "job_queue_size",
        "lmcache_config_file",
        "enable_stateful_sessions",
    }
)
# The Neuron image (djl-inference:0.30.0-neuronx-sdk2.20.1): deepjavalibrary/djl-serving branch 0.30.0-dlc,
# engines/python/setup/djl_python/properties_manager/tnx_properties.py, TransformerNeuronXProperties, plus its
# Properties base of that branch, which is 0.36's without the two fields added since (enable_lora, lmcache_auto_config).
TNX_PROPERTIES_FIELDS = frozenset(
    {
        "neuron_optimize_level",
        "enable_mixed_precision_accumulation",
        "enable_saturate_infinity",
        "dtype",
        "n_positions",
        "unroll",
        "load_in_8bit",
        "low_cpu_mem_usage",
        "load_split_model",
        "context_length_estimate",
        "amp",
        "quantize",
        "compiled_graph_path",
        "draft_model_compiled_path",
        "speculative_draft_model",
        "speculative_length",
        "draft_model_tp_size",
        "task",
        "save_mp_checkpoint_path",
        "group_query_attention",
        "model_loader",
        "rolling_batch_strategy",
        "fuse_qkv",
        "fuse_mlp",
        "fused_rmsnorm_qkv",
        "qkv_tiling",
        "weight_tiling",
        "attention_layout",
        "collectives_layout",
        "cache_layout",
        "partition_schema",
        "all_reduce_dtype",
        "cast_logits_dtype",
        "on_device_embedding",
        "on_device_generation",
        "shard_over_sequence",
    }
) | (PROPERTIES_FIELDS - {"enable_lora", "lmcache_auto_config"})
# RollingBatchEnum of each engine's properties.py, less what its container does not ship.
GPU_ROLLING_BATCH = ("auto", "vllm", "disable")  # 0.36: vllm, auto, disable, trtllm (TensorRT-LLM image only)
NEURON_ROLLING_BATCH = ("auto", "tnx", "disable")  # 0.30: tnx; vllm/lmidist/scheduler are GPU engines
# VllmRbProperties.validate_dtype's DTYPE_MAPPER and TNx's Dtype enum (fp32/fp16/bf16).
GPU_DTYPES = ("auto", "fp16", "bf16", "fp32")
NEURON_DTYPES = ("fp16", "bf16", "fp32")

_NOT_USER_KEYS = frozenset({"model_id_or_path", "model_dir", "input_formatter", "output_formatter", "engine"})


@cache
def vllm_engine_args() -> frozenset[str]:
    """vLLM ``EngineArgs`` fields (``assets/lmi/vllm_engine_args.txt`` names its source)."""
    text = (Path(__file__).parent / "assets" / "lmi" / "vllm_engine_args.txt").read_text()
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


@cache
def accepted_keys(flavor: str) -> frozenset[str]:
    """Every ``option.*`` key (without the prefix) the pinned engine of ``flavor`` reads."""
    if flavor == "neuronx":
        keys = TNX_PROPERTIES_FIELDS | LMI_SERVER_KEYS
    else:
        keys = PROPERTIES_FIELDS | VLLM_RB_PROPERTIES_FIELDS | VLLM_RB_ALIASES | LMI_SERVER_KEYS | vllm_engine_args()
    return frozenset(keys - _NOT_USER_KEYS)
