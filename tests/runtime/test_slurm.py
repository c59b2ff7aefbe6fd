"""`genai train slurm-script` and the Slurm side of `genai train launch`: the sbatch script, Slurm's
variables as torchrun's rendezvous, argument checks, and a 2-node DDP job run through the script itself
with stub `scontrol`/`srun` (each "node" a process here, with the variables a real allocation gives it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from genai_runtime.errors import UsageError
from genai_runtime.train.launch import torchrun_command
from genai_runtime.train.slurm import expand_hostlist, slurm_allocation, slurm_script

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="bash is not installed")


def _config(tmp_path: Path, text: str = "model: /fsx/models/llama2-7b\nmode: lora\n") -> Path:
    path = tmp_path / "sft.yaml"
    path.write_text(text)
    return path


def _embedded_config(script: str) -> dict:
    return json.loads(script.split("<<'GENAI_CONFIG'\n", 1)[1].split("\nGENAI_CONFIG\n", 1)[0])


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from genai_runtime.cli import main

    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- the script ----------------------------------------------------------------------------------


@needs_bash
def test_the_script_is_bash_with_the_sbatch_directives_and_the_node_environment(tmp_path, capsys):
    out = tmp_path / "job.sbatch"
    argv = ["train", "slurm-script", "--config", str(_config(tmp_path)), "--nodes", "4", "--partition", "train"]
    code, stdout, _ = _cli([*argv, "--time", "12:00:00", "--out", str(out)], capsys)
    assert code == 0 and "4 x ml.trn1.32xlarge, 32 process(es) per node" in stdout and f"sbatch {out}" in stdout
    script = out.read_text()
    assert os.access(out, os.X_OK)
    assert subprocess.run([BASH, "-n", str(out)], capture_output=True).returncode == 0
    directives = re.findall(r"^#SBATCH (\S+)$", script, flags=re.M)
    assert directives == [
        "--job-name=sft",
        "--nodes=4",
        "--ntasks-per-node=1",
        "--exclusive",
        "--wait-all-nodes=1",
        "--output=/fsx/genai/sft/logs/%x_%j.out",
        "--partition=train",
        "--time=12:00:00",
    ]
    assert script.index("#SBATCH --time") < script.index("set -euo pipefail")  # sbatch stops at the first command
    # what genai train launch reads on every node, and the Neuron/EFA settings of awsome-distributed-training
    assert "export GENAI_INSTANCE_TYPE=ml.trn1.32xlarge\n" in script
    for name in ("NEURON_CC_FLAGS", "NEURON_RT_STOCHASTIC_ROUNDING_EN", "FI_PROVIDER", "FI_EFA_USE_DEVICE_RDMA"):
        assert f'export {name}="${{{name}:-' in script
    assert "--cache_dir=/fsx/genai/sft/neuron-cache" in script and "NCCL_" not in script
    # the rendezvous from Slurm, then one genai train launch per node
    assert 'mapfile -t GENAI_NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")' in script
    assert 'export MASTER_ADDR="${GENAI_NODES[0]:?' in script
    assert 'export MASTER_PORT="${MASTER_PORT:-29500}"' in script
    assert "if [ -d /opt/sagemaker_cluster ]; then\n  AUTO_RESUME=(--auto-resume=1)" in script
    srun = script[script.index("\nsrun ") :]
    assert '--nodes="$SLURM_NNODES" --ntasks-per-node=1' in srun and "--kill-on-bad-exit=1" in srun
    assert "genai train launch --config=/fsx/genai/sft/train_config.json --no-eval" in srun
    assert "export VIRTUAL_ENV=/fsx/genai/venv" in script
    # the validated config with the /fsx defaults, embedded; the trainer for NeuronCores
    config = _embedded_config(script)
    assert config["output_dir"] == "/fsx/genai/sft" and config["checkpoint_dir"] == "/fsx/genai/sft/checkpoints"
    assert config["data"]["train"] == "/fsx/data" and config["model"] == "/fsx/models/llama2-7b"
    assert (config["trainer"], config["mode"]) == ("neuron", "lora")
    # outside an allocation the script stops at once
    stray = subprocess.run([BASH, str(out)], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert stray.returncode != 0 and "submit this script with sbatch" in stray.stderr


def test_gpu_nodes_get_nccl_and_only_efa_types_the_efa_variables(tmp_path):
    config = _config(tmp_path, "model: /fsx/m\noutput_dir: /fsx/runs/a\ndata: {train: /fsx/data/samsum}\n")
    p5 = slurm_script(config, 2, instance_type="ml.p5.48xlarge", overrides={"training.max_steps": 50}).text
    assert "export GENAI_INSTANCE_TYPE=ml.p5.48xlarge" in p5 and "NEURON_" not in p5
    assert 'export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"' in p5 and 'FI_EFA_USE_HUGE_PAGE="${FI_EFA_USE_HUGE_PAGE:-0}"' in p5
    embedded = _embedded_config(p5)
    assert (embedded["trainer"], embedded["training"]["max_steps"]) == ("transformers", 50)
    assert embedded["output_dir"] == "/fsx/runs/a" and embedded["data"]["train"] == "/fsx/data/samsum"
    assert "#SBATCH --partition" not in p5 and "#SBATCH --time" not in p5  # the cluster's defaults
    g5 = slurm_script(config, 1, instance_type="ml.g5.12xlarge")
    assert g5.processes_per_node == 4 and "NCCL_DEBUG" in g5.text and "FI_PROVIDER" not in g5.text


def test_expand_hostlist_reads_the_simple_compressed_forms():
    assert expand_hostlist("trn-[1-2,5]") == ["trn-1", "trn-2", "trn-5"]
    assert expand_hostlist("node[08-10],login") == ["node08", "node09", "node10", "login"]
    assert expand_hostlist("ip-10-1-12-[34,56]") == ["ip-10-1-12-34", "ip-10-1-12-56"]
    assert expand_hostlist("a,b") == ["a", "b"]
    for bad in ("rack[1-2]-node[1-3]", "node[3-1]", "node[1-2", "a,,b"):
        with pytest.raises(UsageError, match="hostlist"):
            expand_hostlist(bad)


# ---- genai train launch inside a Slurm step -------------------------------------------------------


def _step(**extra: str) -> dict[str, str]:
    """What srun gives the task on node 1 of a 2-node job (one task per node)."""
    return {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "trn-[3-4]",
        "SLURM_NNODES": "2",
        "SLURM_NODEID": "1",
        "SLURM_PROCID": "1",
        "SLURM_LOCALID": "0",
        "SLURM_NTASKS": "2",
        **extra,
    }


def test_launch_builds_torchrun_from_the_slurm_allocation(tmp_path):
    command = torchrun_command(["--no-eval"], _step(GENAI_INSTANCE_TYPE="ml.trn1.32xlarge", MASTER_ADDR="trn-3"))
    assert command[3:8] == [
        "--nnodes=2",
        "--node_rank=1",
        "--nproc_per_node=32",
        "--master_addr=trn-3",
        "--master_port=29500",
    ]
    assert command[-5:] == ["-m", "genai_runtime.cli", "train", "sft", "--no-eval"]
    # no MASTER_ADDR: the first host of the node list (scontrol is what the script uses)
    assert torchrun_command([], _step(SLURM_GPUS_ON_NODE="8", MASTER_PORT="29611"))[5:8] == [
        "--nproc_per_node=8",
        "--master_addr=trn-3",
        "--master_port=29611",
    ]
    assert torchrun_command([], _step())[5] == "--nproc_per_node=1"
    assert slurm_allocation({"SLURM_JOB_ID": "1", "SLURM_JOB_NODELIST": "a"}) is None  # an salloc shell, no step
    assert torchrun_command([], {"SM_NUM_GPUS": "4"})[3:6] == ["--nnodes=1", "--node_rank=0", "--nproc_per_node=4"]
    # a SageMaker job's own files still come first
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    resources = {"current_host": "algo-1", "hosts": ["algo-1"], "current_instance_type": "ml.g5.12xlarge"}
    (config / "resourceconfig.json").write_text(json.dumps(resources))
    sagemaker = torchrun_command([], _step(GENAI_SAGEMAKER_ROOT=str(tmp_path)))
    assert sagemaker[3:7] == ["--nnodes=1", "--node_rank=0", "--nproc_per_node=4", "--master_addr=127.0.0.1"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"SLURM_NODEID": "2"}, "SLURM_NODEID=2 is not below SLURM_NNODES=2"),
        ({"SLURM_NNODES": "two"}, "SLURM_NNODES='two': expected a whole number"),
        ({"SLURM_NTASKS": "16"}, r"SLURM_NTASKS=16 on 2 node\(s\): .*srun --ntasks-per-node=1"),
        ({"GENAI_INSTANCE_TYPE": "ml.trn1.64xlarge"}, "GENAI_INSTANCE_TYPE='ml.trn1.64xlarge': not a known"),
        ({"SLURM_JOB_NODELIST": "r[1-2]n[1-2]"}, "export MASTER_ADDR"),
    ],
)
def test_launch_refuses_a_slurm_step_it_cannot_map(extra, message):
    with pytest.raises(UsageError, match=message):
        torchrun_command([], _step(**extra))


# ---- bad arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--nodes", "0"], "argument --nodes: 0 must be at least 1"),
        (["--nodes", "two"], "argument --nodes: 'two' is not an integer"),
        (["--nodes", "2", "--instance-type", "ml.trn9.huge"], "--instance-type='ml.trn9.huge': not a known"),
        (["--nodes", "2", "--instance-type", "ml.inf2.48xlarge"], "--instance-type=ml.inf2.48xlarge: Inferentia2"),
        (["--nodes", "2", "--set", "output_dir=/fsx/my out"], "output_dir='/fsx/my out': no spaces"),
        (["--nodes", "2", "--partition", "train_1"], "--partition='train_1': a HyperPod Slurm partition name"),
        (["--nodes", "2", "--partition=-train"], "--partition='-train'"),
        (["--nodes", "2", "--time", "12:75:00"], "--time='12:75:00': use HH:MM:SS"),
        (["--nodes", "2", "--time", "1-24"], "--time='1-24'"),
        (["--nodes", "2", "--time", "noon"], "--time='noon'"),
        (["--nodes", "2", "--job-name", "my job"], "--job-name='my job'"),
        (["--nodes", "2", "--set", "modee=lora"], "modee: unknown key"),
        (["--nodes", "2", "--set", "trainer=transformers"], "trainer=transformers on --instance-type=ml.trn1.32xlarge"),
        (["--nodes", "2", "--set", "sharding_degree=128"], "sharding_degree=128 exceeds the 64 device"),
        (["--nodes", "2", "--set", "output_dir=/home/me/out"], r"output_dir=/home/me/out: not on the shared FSx"),
        (["--nodes", "2", "--set", "data.train=/tmp/d.jsonl"], "data.train=/tmp/d.jsonl: .*every node reads"),
        (["--nodes", "2", "--set", "output_dir=/fsx/../home/x"], "output_dir=/home/x: not on the shared"),
        (["--nodes", "2", "--venv", "/opt/venv"], "--venv=/opt/venv: .*every node runs genai from it"),
    ],
)
def test_bad_arguments_exit_2_naming_the_flag(tmp_path, capsys, arguments, message):
    config = _config(tmp_path)
    code, stdout, stderr = _cli(["train", "slurm-script", "--config", str(config), *arguments], capsys)
    assert code == 2 and stdout == ""
    assert re.search(message, stderr), stderr


def test_a_local_output_dir_is_refused_with_the_reason_unless_allowed(tmp_path, capsys):
    config = _config(tmp_path, f"model: /fsx/m\noutput_dir: {tmp_path / 'out'}\n")
    code, _, stderr = _cli(["train", "slurm-script", "--config", str(config), "--nodes", "2"], capsys)
    assert code == 2
    assert "every node must see the same checkpoints" in stderr and "--allow-local-paths" in stderr
    argv = ["train", "slurm-script", "--config", str(config), "--nodes", "2", "--allow-local-paths"]
    code, stdout, _ = _cli([*argv, "--venv", "/opt/venv"], capsys)
    assert code == 0 and _embedded_config(stdout)["output_dir"] == str(tmp_path / "out")
    missing = _cli(["train", "slurm-script", "--config", str(tmp_path / "nope.yaml"), "--nodes", "1"], capsys)
    assert missing[0] == 2 and "--config=" in missing[2] and "no such file" in missing[2]


# ---- a 2-node job, through the script ------------------------------------------------------------

SCONTROL = """#!/bin/bash
# stub: `scontrol show hostnames [LIST]`, one host per line (this stub expands comma lists only)
[ "$1 $2" = "show hostnames" ] || { echo "stub scontrol: unexpected $*" >&2; exit 1; }
tr ',' '\\n' <<<"${3:-$SLURM_JOB_NODELIST}"
"""

SRUN = """#!/bin/bash
# stub: srun --ntasks-per-node=1 ... CMD: one task per node of the allocation, started here, each with the
# variables srun gives a task; exits with the highest status, as srun does.
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do echo "$1" >>"$STUB_LOGS/srun-flags"; shift; done
IFS=, read -r -a hosts <<<"$SLURM_JOB_NODELIST"
pids=()
for ((node = 0; node < SLURM_NNODES; node++)); do
  SLURM_NODEID=$node SLURM_PROCID=$node SLURM_LOCALID=0 SLURM_STEP_ID=0 SLURMD_NODENAME="${hosts[$node]}" \\
    SLURM_STEP_NODELIST="$SLURM_JOB_NODELIST" SLURM_STEP_NUM_NODES="$SLURM_NNODES" \\
    SLURM_STEP_NUM_TASKS="$SLURM_NNODES" SLURM_NTASKS="$SLURM_NNODES" \\
    "$@" >"$STUB_LOGS/node$node.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || { code=$?; [ "$code" -gt "$status" ] && status=$code; }; done
exit "$status"
"""


def _results(log: str) -> list[dict]:
    """The JSON results `genai train sft` prints (one per rank of the node)."""
    return [json.loads(block) for block in re.findall(r"^\{\n.*?^\}$", log, flags=re.M | re.S)]


@needs_bash
@pytest.mark.slow
def test_two_nodes_train_one_ddp_job_through_the_sbatch_script(tiny_model, dialogues, tmp_path, capsys):
    """The script as sbatch runs it on node 0 of a 2-node allocation; stub srun starts node 0 and node 1
    (two processes here, as `localhost` and `127.0.0.1`), each a real `genai train launch` -> torchrun -> sft
    on the gloo backend. One DDP job of world size 2 trains, and rank 0 alone writes the outputs."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "genai").is_file():
        pytest.skip("the genai console script is not installed in this environment")
    out = tmp_path / "out"
    config = _config(
        tmp_path,
        json.dumps(
            {
                "model": str(tiny_model),
                "data": {"train": str(dialogues)},
                "output_dir": str(out),
                "merge_adapter": True,
                "lora": {"r": 4},
                "training": {"max_steps": 4, "save_steps": 2, "batch_size": 2, "logging_steps": 1},
            }
        ),
    )
    script = tmp_path / "job.sbatch"
    argv = ["train", "slurm-script", "--config", str(config), "--nodes", "2", "--instance-type", "ml.g5.xlarge"]
    argv += ["--job-name", "tiny", "--venv", str(venv), "--allow-local-paths", "--out", str(script)]
    assert _cli(argv, capsys)[0] == 0
    assert (out / "logs").is_dir()  # the #SBATCH --output folder, made when the script is written

    stubs, logs = tmp_path / "stubs", tmp_path / "logs"
    stubs.mkdir()
    logs.mkdir()
    for name, text in (("scontrol", SCONTROL), ("srun", SRUN)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SM_", "MASTER_", "GENAI_"))}
    environ.update(
        PATH=f"{stubs}{os.pathsep}{environ['PATH']}",
        STUB_LOGS=str(logs),
        CUDA_VISIBLE_DEVICES="",  # CPU and gloo even on a GPU machine
        MASTER_PORT=str(_free_port()),
        # what sbatch gives the batch script on the first node of a 2-node allocation
        SLURM_JOB_ID="4242",
        SLURM_JOB_NAME="tiny",
        SLURM_JOB_NODELIST="localhost,127.0.0.1",
        SLURM_NODELIST="localhost,127.0.0.1",
        SLURM_NNODES="2",
        SLURM_JOB_NUM_NODES="2",
        SLURM_NODEID="0",
        SLURM_PROCID="0",
        SLURM_LOCALID="0",
        SLURM_NTASKS="2",
        SLURM_NTASKS_PER_NODE="1",
        SLURM_SUBMIT_DIR=str(tmp_path),
    )
    batch = subprocess.run([BASH, str(script)], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300)
    node_logs = [(logs / f"node{n}.log").read_text() if (logs / f"node{n}.log").exists() else "" for n in (0, 1)]
    detail = f"{batch.stderr[-2000:]}\n--- node 0\n{node_logs[0][-3000:]}\n--- node 1\n{node_logs[1][-3000:]}"
    assert batch.returncode == 0, detail
    assert "genai: job 4242 on 2 node(s) (localhost,127.0.0.1), rendezvous localhost:" in batch.stdout
    flags = (logs / "srun-flags").read_text().split()
    assert flags == ["--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "--label"]

    # each node ran torchrun for its own rank, with the rendezvous the script resolved
    port = environ["MASTER_PORT"]
    for rank, log in enumerate(node_logs):
        expected = f"--nnodes=2 --node_rank={rank} --nproc_per_node=1 --master_addr=localhost --master_port={port}"
        assert expected in log, log[-3000:]
        assert f"--config={out / 'train_config.json'} --no-eval" in log
    # one DDP job: both ranks trained in step, in a world of 2
    results = [_results(log) for log in node_logs]
    assert [len(r) for r in results] == [1, 1], detail
    rank0, rank1 = results[0][0], results[1][0]
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["global_step"] == rank1["global_step"] == 4
    # rank 0 alone went on to write the outputs: only its result has the merged model
    assert rank0["merged_dir"] == str(out / "merged") and rank1["merged_dir"] is None
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert (metrics["world_size"], metrics["global_step"]) == (2, 4)
    assert (out / "model" / "adapter_config.json").is_file() and (out / "merged" / "config.json").is_file()
    assert (out / "test.jsonl").is_file() and json.loads((out / "train_config.json").read_text())["output_dir"] == str(
        out
    )
    # the checkpoints both ranks need to resume: each rank saved its own RNG state into the shared folder
    checkpoint = out / "checkpoints" / "checkpoint-4"
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
