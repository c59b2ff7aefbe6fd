"""Training on a SageMaker HyperPod cluster that runs Slurm.

``genai train slurm-script`` writes an ``sbatch`` script that runs ``genai train launch`` once on every
node (``srun``, one task per node); ``genai train launch`` then reads the allocation from Slurm's own
variables (``slurm_allocation``) and starts torchrun with one process per NeuronCore/GPU of the node.
Data, outputs and checkpoints live on FSx for Lustre, which ``TrainiumCluster`` has HyperPod mount at
``/fsx`` on every node: a checkpoint written by one node must be readable by all of them when the job
resumes (``sft`` resumes from the newest complete checkpoint in ``checkpoint_dir``).

Slurm facts, quoted from the Slurm 26.11 man pages (SchedMD/slurm, ``doc/man/man1/sbatch.1``, ``srun.1``,
``scontrol.1``):

- sbatch ``-N, --nodes``: "If only one number is specified, this is used as both the minimum and maximum
  node count."
- sbatch/srun ``--ntasks-per-node=<ntasks>``: "Request that ntasks be invoked on each node."
- sbatch ``--exclusive``: "The job allocation can not share nodes ... with other running jobs"; "the job is
  allocated all CPUs and GRES on all nodes in the allocation".
- sbatch ``--wait-all-nodes=1``: "Do not begin execution until all nodes are ready for use."
- sbatch ``-o, --output=<filename_pattern>``: "connect the batch script's standard output directly to the
  file name specified"; "By default both standard output and standard error are directed to the same
  file"; pattern ``%x`` "Job name.", ``%j`` "jobid of the running job".
- sbatch ``-t, --time``: "Acceptable time formats include "minutes", "minutes:seconds",
  "hours:minutes:seconds", "days-hours", "days-hours:minutes" and "days-hours:minutes:seconds"."
- sbatch ``-p, --partition=<partition_names>``: "Request a specific partition for the resource allocation.
  If not specified, the default behavior is to allow the slurm controller to select the default partition".
  HyperPod's own rule for a partition name (``AWS::SageMaker::Cluster`` ``SlurmConfig.PartitionNames``,
  cfn-lint's bundled schema): ``^[a-zA-Z0-9](-*[a-zA-Z0-9])*$``, at most 1024 characters.
- srun ``-K, --kill-on-bad-exit``: "terminate a step if any task exits with a non-zero exit code";
  ``-l, --label``: "Prepend task number to lines of stdout/err"; ``--export=ALL``: "Default mode ... All
  of the user's environment will be loaded from the caller's environment" (the steps see what the batch
  script exports).
- Output environment variables (srun): ``SLURM_JOB_ID`` "Job id of the executing job.",
  ``SLURM_NNODES`` "Total number of nodes in the job's resource allocation", ``SLURM_NODEID`` "The relative
  node ID of the current node.", ``SLURM_JOB_NODELIST`` "List of nodes allocated to the job.",
  ``SLURM_STEP_NODELIST`` "List of nodes allocated to the step.", ``SLURM_NTASKS`` (same as ``-n``),
  ``SLURM_PROCID`` "The MPI rank (or relative process ID) of the current process.", ``SLURM_LOCALID``
  "Node local task ID for the process within a job.", ``SLURM_GPUS_ON_NODE`` "Number of GPUs available to
  the step on this node."
- scontrol ``show hostnames``: "writes a list of individual host names to standard output (one per line).
  If no hostlist expression is supplied, the contents of the SLURM_JOB_NODELIST environment variable is
  used. For example "tux[1-3]" is mapped to "tux1","tux2" and "tux3"."

How the AWS HyperPod Slurm examples launch torchrun (aws-samples/awsome-distributed-training):
``3.test_cases/pytorch/FSDP/slurm/*.sbatch`` run ``srun ${AUTO_RESUME} -l ... torchrun --nproc_per_node=...
--nnodes=$SLURM_JOB_NUM_NODES ...`` with ``#SBATCH --exclusive`` and, on HyperPod, ``if [ -d
"/opt/sagemaker_cluster" ]; then ... AUTO_RESUME="--auto-resume=1"`` ("Detected Hyperpod cluster.. enabling
--auto-resume=1"); ``3.test_cases/23.SMHP-esm2/3.train_fsdp.sh`` takes the head node from
``scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1``. The environment variables below are theirs
(see ``_neuron_environment`` / ``_gpu_environment``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import UsageError

SHARED_ROOT = PurePosixPath("/fsx")  # TrainiumCluster: ClusterFsxLustreConfig(mount_path="/fsx") on every node
DEFAULT_DATA = "/fsx/data"  # the FSx data repository association's file_system_path "/data" (the data bucket)
OUTPUT_ROOT = "/fsx/genai"
DEFAULT_VENV = "/fsx/genai/venv"
DEFAULT_INSTANCE_TYPE = "ml.trn1.32xlarge"
DEFAULT_MASTER_PORT = 29500
INSTANCE_TYPE_VARIABLE = "GENAI_INSTANCE_TYPE"
CONFIG_FILE = "train_config.json"
HYPERPOD_MARKER = "/opt/sagemaker_cluster"  # awsome-distributed-training: present on HyperPod nodes

# Instance types with EFA network interfaces among ours. The FSDP examples say of their EFA variables
# "For G4dn and other G5, comment out all", so the g families get none.
EFA_TYPES = frozenset(
    {
        "ml.trn1.32xlarge",
        "ml.trn1n.32xlarge",
        "ml.p4d.24xlarge",
        "ml.p4de.24xlarge",
        "ml.p5.48xlarge",
        "ml.p5e.48xlarge",
    }
)
_PARTITION = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")  # HyperPod SlurmConfig.PartitionNames item pattern
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # also a folder name under /fsx/genai
_TIME_FORMATS = (  # sbatch --time: the six formats of the man page
    re.compile(r"(?P<minutes>\d+)"),
    re.compile(r"(?P<minutes>\d+):(?P<seconds>\d+)"),
    re.compile(r"(?P<hours>\d+):(?P<minutes>\d+):(?P<seconds>\d+)"),
    re.compile(r"(?P<days>\d+)-(?P<hours>\d+)"),
    re.compile(r"(?P<days>\d+)-(?P<hours>\d+):(?P<minutes>\d+)"),
    re.compile(r"(?P<days>\d+)-(?P<hours>\d+):(?P<minutes>\d+):(?P<seconds>\d+)"),
)


# ---- the allocation, as genai train launch sees it on one node ------------------------------------


@dataclass(frozen=True)
class SlurmAllocation:
    """This node's place in a Slurm job step: what torchrun needs."""

    job_id: str
    nodes: int
    node_rank: int
    master_addr: str
    processes: int


def slurm_allocation(environ: dict[str, str]) -> SlurmAllocation | None:
    """The Slurm step this process runs in (``srun``: one task per node), or ``None`` outside one.

    Nodes and this node's rank come from ``SLURM_NNODES`` / ``SLURM_NODEID``; the rendezvous host from
    ``MASTER_ADDR`` (the generated script exports the first host that ``scontrol show hostnames`` gives),
    else from the first host of the node list; the processes from the node's instance type.
    """
    if not environ.get("SLURM_JOB_ID"):
        return None
    nodes_text = environ.get("SLURM_NNODES") or environ.get("SLURM_JOB_NUM_NODES")
    rank_text = environ.get("SLURM_NODEID")
    if nodes_text is None or rank_text is None:
        return None  # e.g. an salloc shell on the login node: not a step on a compute node
    nodes = _count("SLURM_NNODES", nodes_text, minimum=1)
    rank = _count("SLURM_NODEID", rank_text, minimum=0)
    if rank >= nodes:
        raise UsageError(f"SLURM_NODEID={rank} is not below SLURM_NNODES={nodes}")
    tasks = environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS")
    if tasks and tasks.isdigit() and int(tasks) > nodes:
        raise UsageError(
            f"SLURM_NTASKS={tasks} on {nodes} node(s): start genai train launch once per node "
            "(srun --ntasks-per-node=1); torchrun starts the processes of each node"
        )
    master = environ.get("MASTER_ADDR")
    if not master:
        nodelist = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST")
        if not nodelist:
            raise UsageError("inside a Slurm job without MASTER_ADDR or SLURM_JOB_NODELIST: cannot find node 0")
        master = expand_hostlist(nodelist)[0]
    return SlurmAllocation(environ["SLURM_JOB_ID"], nodes, rank, master, processes_per_node(environ))


def processes_per_node(environ: dict[str, str]) -> int:
    """One process per NeuronCore/GPU: ``GENAI_INSTANCE_TYPE`` via the construct library's instance facts,
    else ``SLURM_GPUS_ON_NODE``, else 1."""
    instance_type = environ.get(INSTANCE_TYPE_VARIABLE)
    if instance_type:
        return _spec(instance_type, INSTANCE_TYPE_VARIABLE).accelerator_count
    gpus = environ.get("SLURM_GPUS_ON_NODE", "")
    if gpus.isdigit() and int(gpus) > 0:
        return int(gpus)
    return 1


def expand_hostlist(expression: str) -> list[str]:
    """The hosts of a Slurm hostlist: ``a,b``, ``node[1-3,7]``, ``ip-10-0-1-[5-6]``, ``node[08-10]``
    (zero padding kept), one bracket per host.

    ``scontrol show hostnames`` is authoritative (the generated script uses it and exports
    ``MASTER_ADDR``); this pure-Python subset serves ``genai train launch`` when ``MASTER_ADDR`` is absent.
    """
    tokens, current, depth = [], "", 0
    for char in expression.strip():
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth not in (0, 1):
            raise UsageError(f"hostlist {expression!r}: unbalanced brackets")
        if char == "," and depth == 0:
            tokens.append(current)
            current = ""
        else:
            current += char
    tokens.append(current)
    hosts: list[str] = []
    for token in tokens:
        match = re.fullmatch(r"([^\[\]]*)\[([0-9,-]+)\]([^\[\]]*)", token)
        if match is None:
            if not token or "[" in token or "]" in token:
                raise UsageError(
                    f"hostlist {expression!r}: only host, host[1-3,7] forms are understood here; "
                    "export MASTER_ADDR=$(scontrol show hostnames | head -n 1)"
                )
            hosts.append(token)
            continue
        prefix, ranges, suffix = match.groups()
        for part in ranges.split(","):
            low, dash, high = part.partition("-")
            if not low.isdigit() or (dash and not high.isdigit()) or (dash and int(high) < int(low)):
                raise UsageError(f"hostlist {expression!r}: bad range {part!r}")
            for number in range(int(low), int(high if dash else low) + 1):
                hosts.append(f"{prefix}{number:0{len(low)}d}{suffix}")
    return hosts


# ---- the sbatch script ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmScript:
    """A generated job: the script text and what it asks for."""

    text: str
    job_name: str
    nodes: int
    instance_type: str
    processes_per_node: int
    output_dir: str
    log_dir: str
    config: dict[str, Any]


def slurm_script(
    config_path: str | Path,
    nodes: int,
    *,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    partition: str | None = None,
    time: str | None = None,
    job_name: str | None = None,
    venv: str = DEFAULT_VENV,
    overrides: dict[str, Any] | None = None,
    allow_local_paths: bool = False,
) -> SlurmScript:
    """Validate the request and the training config, and render the sbatch script.

    The config (file, then ``overrides``, with the /fsx defaults for a missing ``data.train`` and
    ``output_dir``) is validated here and embedded in the script, which writes it next to the outputs at
    the start of the job: every node reads that one copy, so the config file need not be on /fsx.
    """
    from .config import load_config
    from .distributed import fsdp_arguments

    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise UsageError(f"--nodes={nodes}: give the number of nodes, at least 1")
    spec = _spec(instance_type, "--instance-type")
    if instance_type.startswith("ml.inf2."):
        raise UsageError(f"--instance-type={instance_type}: Inferentia2 serves models; train on trn1/trn1n or GPUs")
    if partition is not None and (not _PARTITION.match(partition) or len(partition) > 1024):
        raise UsageError(
            f"--partition={partition!r}: a HyperPod Slurm partition name is letters and digits, "
            "optionally joined by hyphens (e.g. trn1-partition)"
        )
    if time is not None:
        validate_time(time)
    config_path = Path(config_path)
    if job_name is None:
        job_name = re.sub(r"[^A-Za-z0-9._-]", "-", config_path.stem)
        job_name = job_name if _JOB_NAME.match(job_name) else f"genai-{job_name}"
    if not _JOB_NAME.match(job_name) or job_name == PurePosixPath(DEFAULT_VENV).name:
        raise UsageError(
            f"--job-name={job_name!r}: use letters, digits, '.', '_' and '-', not 'venv' "
            f"(it names the output folder {OUTPUT_ROOT}/NAME)"
        )
    overrides = dict(overrides or {})
    raw = _raw_config(config_path)
    defaults: dict[str, Any] = {}
    if not raw.get("output_dir") and "output_dir" not in overrides:
        defaults["output_dir"] = f"{OUTPUT_ROOT}/{job_name}"
    data: Any = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    if not data.get("train") and "data.train" not in overrides:
        defaults["data.train"] = DEFAULT_DATA
    if spec.accelerator == "neuron" and not raw.get("trainer") and "trainer" not in overrides:
        defaults["trainer"] = "neuron"  # what the Neuron image's GENAI_TRAINER gives a SageMaker job
    config = load_config(config_path, {**defaults, **overrides}, environ={})
    if spec.accelerator == "neuron" and config.trainer != "neuron":
        raise UsageError(
            f"trainer={config.trainer} on --instance-type={instance_type}: that trainer would run on the host "
            "CPUs, not the NeuronCores; use trainer: neuron (optimum-neuron) or a GPU instance type"
        )
    if spec.accelerator == "gpu" and config.trainer == "neuron":
        raise UsageError(f"trainer=neuron needs Trainium; --instance-type={instance_type} has GPUs")
    fsdp_arguments(config.sharding_degree, nodes * spec.accelerator_count)  # names a degree the job cannot have

    shared = {
        "output_dir": (_absolute(config.output_dir), "every node must see the same checkpoints and outputs"),
        "checkpoint_dir": (_absolute(config.checkpoints), "every node must see the same checkpoints to resume"),
        "data.train": (_absolute(config.data.train), "every node reads the training data"),
        "--venv": (_absolute(venv), "every node runs genai from it"),
    }
    if config.data.general is not None:
        shared["data.general"] = (_absolute(config.data.general), "every node reads the mixed-in data")
    if config.model.is_absolute() or config.model.exists():  # else a Hugging Face Hub id
        shared["model"] = (_absolute(config.model), "every node loads the base model")
    if not allow_local_paths:
        for key, (path, why) in shared.items():
            if not _on_shared_storage(path):
                raise UsageError(
                    f"{key}={path}: not on the shared FSx file system ({SHARED_ROOT}); {why}. "
                    f"Put it under {SHARED_ROOT}, or pass --allow-local-paths if that path is shared otherwise"
                )
    resolved = config.model_dump(mode="json")
    for key in ("output_dir", "model"):
        if key in shared:
            resolved[key] = str(shared[key][0])
    resolved["checkpoint_dir"] = str(shared["checkpoint_dir"][0])
    resolved["data"]["train"] = str(shared["data.train"][0])
    if "data.general" in shared:
        resolved["data"]["general"] = str(shared["data.general"][0])
    output_dir = str(shared["output_dir"][0])
    if re.search(r"[\s'\"%\\$`{}]", output_dir):
        raise UsageError(
            f"output_dir={output_dir!r}: no spaces, quotes, braces, '%', '$' or '\\' (it goes into #SBATCH)"
        )
    text = _render(
        job_name=job_name,
        nodes=nodes,
        instance_type=instance_type,
        processes=spec.accelerator_count,
        accelerator=spec.accelerator,
        partition=partition,
        time=time,
        venv=str(shared["--venv"][0]),
        output_dir=output_dir,
        config=resolved,
    )
    return SlurmScript(
        text=text,
        job_name=job_name,
        nodes=nodes,
        instance_type=instance_type,
        processes_per_node=spec.accelerator_count,
        output_dir=output_dir,
        log_dir=f"{output_dir}/logs",
        config=resolved,
    )


def validate_time(text: str) -> str:
    """``--time`` in one of sbatch's formats; minutes and seconds below 60 after a larger unit, hours
    below 24 after days."""
    for pattern in _TIME_FORMATS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
        leading = next(iter(match.groupdict()))
        bounds = {"hours": 24, "minutes": 60, "seconds": 60}
        if all(parts[k] < bound for k, bound in bounds.items() if k in parts and k != leading):
            return text
        break
    raise UsageError(
        f"--time={text!r}: use HH:MM:SS (e.g. 12:00:00), or another sbatch format: MM, MM:SS, D-HH, D-HH:MM, D-HH:MM:SS"
    )


def _render(
    *,
    job_name: str,
    nodes: int,
    instance_type: str,
    processes: int,
    accelerator: str,
    partition: str | None,
    time: str | None,
    venv: str,
    output_dir: str,
    config: dict[str, Any],
) -> str:
    q = shlex.quote
    config_file = f"{output_dir}/{CONFIG_FILE}"
    directives = [
        f"--job-name={job_name}",
        f"--nodes={nodes}",
        "--ntasks-per-node=1",  # one genai train launch per node; its torchrun starts one process per device
        "--exclusive",
        "--wait-all-nodes=1",
        f"--output={output_dir}/logs/%x_%j.out",
    ]
    if partition:
        directives.append(f"--partition={partition}")
    if time:
        directives.append(f"--time={time}")
    environment = [(INSTANCE_TYPE_VARIABLE, instance_type, True), ("PYTHONUNBUFFERED", "1", True)]
    environment += [("OMP_NUM_THREADS", "1", False)]
    if accelerator == "neuron":
        environment += _neuron_environment(output_dir)
    else:
        environment += _gpu_environment()
    if instance_type in EFA_TYPES:
        environment += _efa_environment(accelerator)
    exports = "\n".join(
        f"export {name}={q(value)}" if force else f'export {name}="${{{name}:-{_dq(value)}}}"'
        for name, value, force in environment
    )
    # --no-eval: under torchrun `genai train sft` would run the ROUGE evaluation on every rank, and the ranks
    # other than 0 do not wait for the test split that rank 0 writes; evaluate afterwards on one node with
    # `srun -N1 genai train evaluate --base MODEL --trained OUTPUT_DIR --out OUTPUT_DIR/eval`.
    launch = ["genai", "train", "launch", f"--config={config_file}", "--no-eval"]
    body = f"""#!/bin/bash
# genai train slurm-script: {nodes} x {instance_type}, {processes} process(es) per node (torchrun), job {job_name}.
# Submit it on the cluster's login or controller node: sbatch <this file>. Data, outputs and checkpoints
# are on FSx for Lustre ({output_dir}); a resubmitted or auto-resumed job resumes from the newest checkpoint.
{chr(10).join("#SBATCH " + d for d in directives)}

set -euo pipefail
: "${{SLURM_JOB_NODELIST:?not inside a Slurm allocation: submit this script with sbatch}}"

# Read by genai train launch on every node (srun's default --export=ALL passes them on); a value already
# in the submitting environment wins where it has a default.
{exports}

# The rendezvous: torchrun's node 0 is the first host of the allocation (scontrol is authoritative).
mapfile -t GENAI_NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
export MASTER_ADDR="${{GENAI_NODES[0]:?scontrol show hostnames returned no host}}"
export MASTER_PORT="${{MASTER_PORT:-{DEFAULT_MASTER_PORT}}}"

export VIRTUAL_ENV={q(venv)}
export PATH="$VIRTUAL_ENV/bin:$PATH"
if ! command -v genai >/dev/null; then
  echo "genai is not installed in $VIRTUAL_ENV: pip install 'genai-cdk[runtime]' there" >&2
  exit 2
fi

# The validated training config, written once next to the outputs; every node reads this copy.
mkdir -p {q(output_dir + "/logs")}
cat > {q(config_file)} <<'GENAI_CONFIG'
{json.dumps(config, indent=2)}
GENAI_CONFIG

# HyperPod's auto-resume replaces a faulty node and restarts the step (awsome-distributed-training).
AUTO_RESUME=()
if [ -d {HYPERPOD_MARKER} ]; then
  AUTO_RESUME=(--auto-resume=1)
fi

echo "genai: job $SLURM_JOB_ID on $SLURM_NNODES node(s) ($SLURM_JOB_NODELIST), rendezvous $MASTER_ADDR:$MASTER_PORT"
srun ${{AUTO_RESUME[@]+"${{AUTO_RESUME[@]}}"}} --nodes="$SLURM_NNODES" --ntasks-per-node=1 \\
  --kill-on-bad-exit=1 --label {" ".join(q(part) for part in launch)}
"""
    return body


def _neuron_environment(output_dir: str) -> list[tuple[str, str, bool]]:
    # awsome-distributed-training 3.test_cases/pytorch/optimum-neuron/llama3/slurm/fine-tuning/
    # finetune-llama3-8B.sh (the optimum-neuron trainer we run): NEURON_CC_FLAGS="--model-type=transformer
    # --distribution-strategy=llm-training ... --cache_dir=$CACHE_DIR", NEURON_FUSE_SOFTMAX=1,
    # NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS=5, NEURON_RT_STOCHASTIC_ROUNDING_EN=1, MALLOC_ARENA_MAX=70,
    # FI_PROVIDER="efa", OMP_NUM_THREADS=1. The compile cache goes on /fsx, shared by the nodes.
    flags = f"--model-type=transformer --distribution-strategy=llm-training --cache_dir={output_dir}/neuron-cache"
    return [
        ("NEURON_CC_FLAGS", flags, False),
        ("NEURON_FUSE_SOFTMAX", "1", False),
        ("NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS", "5", False),
        ("NEURON_RT_STOCHASTIC_ROUNDING_EN", "1", False),
        ("MALLOC_ARENA_MAX", "70", False),
    ]


def _gpu_environment() -> list[tuple[str, str, bool]]:
    # awsome-distributed-training 3.test_cases/pytorch/FSDP/slurm/llama3_2_1b-training.sbatch sets
    # NCCL_DEBUG=INFO and NCCL_SOCKET_IFNAME=^docker,lo,veth,eth; 1.architectures/efa-cheatsheet.md advises
    # NCCL_DEBUG only "if you suspect NCCL issues" and "For other instances check ifconfig" for the
    # interface, so: warnings only, and leave out only the virtual and loopback interfaces.
    return [("NCCL_DEBUG", "WARN", False), ("NCCL_SOCKET_IFNAME", "^docker,lo,veth", False)]


def _efa_environment(accelerator: str) -> list[tuple[str, str, bool]]:
    # Neuron over EFA (awsome-distributed-training neuronx-distributed/llama3/kubernetes/llama3_train.yaml-template):
    # FI_PROVIDER=efa, FI_EFA_USE_DEVICE_RDMA=1, FI_EFA_FORK_SAFE=1. GPU (FSDP/slurm/*.sbatch): FI_PROVIDER=efa,
    # FI_EFA_USE_HUGE_PAGE=0 ("Set to 0 when you see os.fork() causes OSError: Cannot allocate memory").
    if accelerator == "neuron":
        return [("FI_PROVIDER", "efa", False), ("FI_EFA_USE_DEVICE_RDMA", "1", False), ("FI_EFA_FORK_SAFE", "1", False)]
    return [("FI_PROVIDER", "efa", False), ("FI_EFA_USE_HUGE_PAGE", "0", False)]


def _dq(value: str) -> str:
    """``value`` inside a double-quoted bash word."""
    return re.sub(r'(["\\$`])', r"\\\1", value)


def _spec(instance_type: str, name: str):
    from genai_contracts.instance_types import INSTANCE_SPECS

    spec = INSTANCE_SPECS.get(instance_type)
    if spec is None:
        families = sorted({known.split(".")[1] for known in INSTANCE_SPECS})
        raise UsageError(
            f"{name}={instance_type!r}: not a known accelerated instance type; use e.g. ml.trn1.32xlarge or "
            f"ml.p5.48xlarge (families: {', '.join(families)})"
        )
    return spec


def _count(name: str, text: str, minimum: int) -> int:
    if not text.isdigit() or int(text) < minimum:
        raise UsageError(f"{name}={text!r}: expected a whole number of at least {minimum}")
    return int(text)


def _absolute(path: str | Path) -> PurePosixPath:
    """``path`` made absolute against this directory, with ``..`` resolved (``/fsx/../etc`` is ``/etc``)."""
    return PurePosixPath(os.path.normpath(os.path.join(os.getcwd(), os.fspath(path))))


def _on_shared_storage(path: PurePosixPath) -> bool:
    return path == SHARED_ROOT or SHARED_ROOT in path.parents


def _raw_config(path: Path) -> dict[str, Any]:
    """The config file's own keys (``load_config`` validates them; this only tells which are missing)."""
    import yaml

    if not path.is_file():
        raise UsageError(f"--config={path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise UsageError(f"--config={path}: not valid YAML/JSON: {error}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"--config={path}: expected a mapping of keys")
    return raw
