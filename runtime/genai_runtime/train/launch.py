"""``genai train launch``: run ``genai train sft`` under torchrun across every accelerator (and every
host) of a SageMaker training job, from the job's own environment.

SageMaker sets ``SM_HOSTS`` / ``SM_CURRENT_HOST`` and the device counts (``SM_NUM_NEURONS`` on
Trainium, ``SM_NUM_GPUS`` on GPU); outside a job it is one process on this machine.
"""

from __future__ import annotations

import json
import os
import sys

from ..errors import UsageError

MASTER_PORT = 29500


def processes_per_host(environ: dict[str, str]) -> int:
    for key in ("SM_NUM_NEURONS", "SM_NUM_GPUS"):
        value = environ.get(key)
        if value and value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def torchrun_command(sft_args: list[str], environ: dict[str, str] | None = None) -> list[str]:
    """The torchrun command line that starts ``genai train sft`` on this host."""
    environ = dict(os.environ if environ is None else environ)
    try:
        hosts = json.loads(environ.get("SM_HOSTS", "[]")) or ["localhost"]
    except json.JSONDecodeError:
        raise UsageError("SM_HOSTS is not a JSON list") from None
    current = environ.get("SM_CURRENT_HOST", hosts[0])
    if current not in hosts:
        raise UsageError(f"SM_CURRENT_HOST={current!r} is not in SM_HOSTS {hosts}")
    hosts = sorted(hosts)  # every host must agree on the ranks
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={len(hosts)}",
        f"--node_rank={hosts.index(current)}",
        f"--nproc_per_node={processes_per_host(environ)}",
        f"--master_addr={hosts[0]}",
        f"--master_port={environ.get('MASTER_PORT', MASTER_PORT)}",
        "-m",
        "genai_runtime.cli",
        "train",
        "sft",
        *sft_args,
    ]
