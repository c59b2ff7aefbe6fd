"""FSDP with the book's sharding-degree semantics, checked against the devices at hand."""

from __future__ import annotations

from ..errors import UsageError


def world_size() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def fsdp_arguments(sharding_degree: int, devices: int) -> dict:
    """TrainingArguments for ``sharding_degree``: 1 -> plain DDP (no FSDP); N == devices -> full
    sharding; 1 < N < devices -> hybrid sharding (shard within groups of N, replicate across)."""
    if sharding_degree < 1:
        raise UsageError(f"sharding_degree={sharding_degree}: must be at least 1 (1 = DDP)")
    if sharding_degree == 1:
        return {}
    if sharding_degree > devices:
        raise UsageError(
            f"sharding_degree={sharding_degree} exceeds the {devices} device(s) of this job; "
            "use at most the device count, or 1 for DDP"
        )
    if devices % sharding_degree:
        raise UsageError(f"sharding_degree={sharding_degree} must divide the {devices} devices evenly")
    strategy = "full_shard" if sharding_degree == devices else "hybrid_shard"
    return {"fsdp": f"{strategy} auto_wrap", "fsdp_config": {"use_orig_params": True, "sync_module_states": True}}
