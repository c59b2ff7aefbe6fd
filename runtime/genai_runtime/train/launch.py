"""``genai train launch``: run ``genai train sft`` under torchrun across every accelerator (and every
host) of a SageMaker training job, from the job's own environment.

Inside a job the hosts and this host's rank come from ``resourceconfig.json`` and the process count
from its ``current_instance_type`` (32 on ``ml.trn1.32xlarge``: one per NeuronCore; one per GPU), via
the construct library's instance facts. Where the Training Toolkit ran, its ``SM_HOSTS`` /
``SM_CURRENT_HOST`` / ``SM_NUM_NEURONS`` / ``SM_NUM_GPUS`` serve; outside a job it is one process here.
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
    from .platform import current_job

    environ = dict(os.environ if environ is None else environ)
    job = current_job(environ)
    if job is not None:
        hosts = sorted(job.hosts)
        return _torchrun(len(hosts), job.host_rank, job.accelerators(), hosts[0], environ, sft_args)
    from .slurm import slurm_allocation

    # A Slurm job step (HyperPod; `genai train slurm-script`): srun starts this once per node, and
    # SLURM_NNODES / SLURM_NODEID / MASTER_ADDR (or the node list) give the rendezvous.
    slurm = slurm_allocation(environ)
    if slurm is not None:
        return _torchrun(slurm.nodes, slurm.node_rank, slurm.processes, slurm.master_addr, environ, sft_args)
    try:
        hosts = json.loads(environ.get("SM_HOSTS", "[]")) or ["localhost"]
    except json.JSONDecodeError:
        raise UsageError("SM_HOSTS is not a JSON list") from None
    current = environ.get("SM_CURRENT_HOST", hosts[0])
    if current not in hosts:
        raise UsageError(f"SM_CURRENT_HOST={current!r} is not in SM_HOSTS {hosts}")
    hosts = sorted(hosts)  # every host must agree on the ranks
    return _torchrun(len(hosts), hosts.index(current), processes_per_host(environ), hosts[0], environ, sft_args)


def _torchrun(
    nodes: int, rank: int, processes: int, master: str, environ: dict[str, str], sft_args: list[str]
) -> list[str]:
    if nodes == 1:  # the host rendezvouses with itself: loopback, whether or not its name resolves here
        master = "127.0.0.1"
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={nodes}",
        f"--node_rank={rank}",
        f"--nproc_per_node={processes}",
        f"--master_addr={master}",
        f"--master_port={environ.get('MASTER_PORT', MASTER_PORT)}",
        "-m",
        "genai_runtime.cli",
        "train",
        "sft",
        *sft_args,
    ]
