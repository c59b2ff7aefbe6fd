"""The shipped HyperPod lifecycle script, run under bash against a fake root.

``GENAI_ROOT`` points the script at a temporary directory; ``mountpoint``, ``mount``, ``id``, ``chown``,
``systemctl`` and ``hostname`` are stubs on ``PATH`` that log their arguments. The cluster configuration is the
one the construct writes (``render_cluster_conf``), so the script and the construct agree on its format.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from genai_cdk.trainium_cluster import CLUSTER_CONF, LIFECYCLE_SCRIPTS, InstanceGroup, render_cluster_conf

STUBS = ("mountpoint", "mount", "umount", "id", "chown", "systemctl", "hostname")
STUB = """#!/usr/bin/env bash
printf '%s\\n' "$(basename "$0") $*" >>"$STUB_CALLS"
case "$(basename "$0")" in
  mountpoint) [ "${FAKE_FSX_MOUNTED:-1}" = 1 ] ;;
  hostname) if [ "${1:-}" = "-I" ]; then echo "$FAKE_IPS"; else echo fake-node; fi ;;
  id) [ "${FAKE_USER_EXISTS:-1}" = 1 ] || exit 1; if [ "$1" = "-u" ]; then echo 1000; else echo ubuntu; fi ;;
  systemctl) [ "${1:-}" = "is-active" ] && { echo active; exit 0; }; exit 0 ;;
  chown) [ "${FAKE_CHOWN_FAILS:-0}" = 0 ] || { echo "chown: Operation not permitted" >&2; exit 1; } ;;
  *) exit 0 ;;
esac
"""
GROUPS = {"controller": "10.1.0.10", "login": "10.1.0.11", "trn1n": "10.1.0.20", "eval": "10.1.0.30"}
SLURM_CONF = "opt/slurm/etc/slurm.conf"


@dataclass
class Node:
    root: Path
    scripts: Path
    calls: Path
    env: dict[str, str]

    def run(self, **overrides: str) -> subprocess.CompletedProcess:
        env = {**self.env, **overrides}
        return subprocess.run(
            ["bash", str(self.scripts / "on_create.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.scripts,
        )

    def calls_made(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    @property
    def log(self) -> str:
        return (self.root / "var/log/genai-cdk/lifecycle.log").read_text()

    @property
    def env_file(self) -> Path:
        return self.root / "etc/profile.d/genai-cdk.sh"


def _node(tmp_path: Path, group: str, *, neuron_devices: int = 16, efa_devices: int = 8) -> Node:
    root, bin_dir, scripts = tmp_path / "root", tmp_path / "bin", tmp_path / "lifecycle"
    shutil.copytree(LIFECYCLE_SCRIPTS, scripts)
    (scripts / CLUSTER_CONF).write_text(
        render_cluster_conf(
            "genai-prod-cluster",
            InstanceGroup("controller", "ml.m5.xlarge", 1),
            [
                InstanceGroup("trn1n", "ml.trn1n.32xlarge", 4, partition="train"),
                InstanceGroup("eval", "ml.g5.12xlarge", 1),
            ],
            InstanceGroup("login", "ml.m5.xlarge", 1),
        )
    )
    bin_dir.mkdir()
    for name in STUBS:
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)
    for path in ("fsx", "proc", "dev", "sys/class/infiniband", "opt/ml/config", "opt/slurm/etc"):
        (root / path).mkdir(parents=True)
    (root / "proc/mounts").write_text(
        "/dev/nvme0n1p1 / ext4 rw,relatime 0 0\nfs-0123456789abcdef0.fsx.us-east-1.amazonaws.com@tcp:/abcdefgh /fsx "
        "lustre rw,flock,lazystatfs 0 0\n"
    )
    for index in range(neuron_devices):
        (root / f"dev/neuron{index}").touch()
    for index in range(efa_devices):
        (root / f"sys/class/infiniband/rdmap{index}s27").mkdir()
    resource_config = {
        "ClusterConfig": {"ClusterName": "genai-prod-cluster"},
        "InstanceGroups": [
            {"Name": name, "InstanceType": "x", "Instances": [{"InstanceName": f"{name}-1", "CustomerIpAddress": ip}]}
            for name, ip in GROUPS.items()
        ],
    }
    (root / "opt/ml/config/resource_config.json").write_text(json.dumps(resource_config))
    (root / SLURM_CONF).write_text("# HyperPod's slurm.conf\nPartitionName=train Nodes=ALL\n")
    calls = tmp_path / "calls.log"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "GENAI_ROOT": str(root),
        "GENAI_FSX_WAIT_SECONDS": "0",
        "STUB_CALLS": str(calls),
        "FAKE_IPS": f"{GROUPS[group]} 172.17.0.1",
    }
    return Node(root, scripts, calls, env)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _state(node: Node) -> dict:
    fsx = node.root / "fsx"
    return {
        "dirs": {d: _mode(fsx / d) for d in ("checkpoints", "data", "genai") if (fsx / d).is_dir()},
        "env": node.env_file.read_text() if node.env_file.exists() else None,
        "slurm_conf": (node.root / SLURM_CONF).read_text(),
        "files": sorted(str(p.relative_to(node.root)) for p in node.root.rglob("*") if "var/log" not in str(p)),
    }


def _assert_leaves_slurm_to_hyperpod(node: Node) -> None:
    calls = node.calls_made()
    assert not [c for c in calls if c.split()[:2] in (["systemctl", a] for a in ("start", "restart", "enable"))]
    assert not [c for c in calls if c.split()[0] in ("mount", "umount")], calls
    assert (node.root / SLURM_CONF).read_text() == "# HyperPod's slurm.conf\nPartitionName=train Nodes=ALL\n"
    assert not list(node.root.rglob("provisioning_parameters.json"))


def test_trainium_compute_node_gets_shared_directories_and_its_environment(tmp_path):
    node = _node(tmp_path, "trn1n")
    result = node.run()
    assert result.returncode == 0, result.stdout + result.stderr
    fsx = node.root / "fsx"
    calls = node.calls_made()
    for name in ("checkpoints", "data", "genai"):  # genai: genai train slurm-script's venv and outputs
        assert _mode(fsx / name) == 0o2775
        assert f"chown ubuntu:ubuntu {fsx}/{name}" in calls
    assert f"mountpoint -q {fsx}" in calls
    env = node.env_file.read_text()
    for line in (
        "export GENAI_CLUSTER_NAME='genai-prod-cluster'",
        "export GENAI_INSTANCE_GROUP='trn1n'",
        "export GENAI_NODE_TYPE='Compute'",
        "export GENAI_SLURM_PARTITION='train'",
        "export GENAI_DATA_DIR='/fsx/data'",
        "export GENAI_CHECKPOINT_DIR='/fsx/checkpoints'",
        "export FI_PROVIDER=efa",
        "export FI_EFA_USE_DEVICE_RDMA=1",
    ):
        assert line in env.splitlines(), env
    assert "NEURON_CC_FLAGS" not in env and "NEURON_RT_NUM_CORES" not in env  # the job script's to set
    assert _mode(node.env_file) == 0o644
    assert "systemctl is-active slurmd" in calls
    assert "16 neuron devices present" in node.log and "8 EFA devices present" in node.log
    assert node.log.rstrip().endswith("genai-cdk lifecycle: done")
    _assert_leaves_slurm_to_hyperpod(node)


def test_controller_and_login_nodes_skip_the_accelerator_checks(tmp_path):
    controller = _node(tmp_path / "c", "controller", neuron_devices=0, efa_devices=0)
    result = controller.run()
    assert result.returncode == 0, result.stdout + result.stderr
    env = controller.env_file.read_text()
    assert "export GENAI_NODE_TYPE='Controller'" in env
    assert "FI_PROVIDER" not in env and "GENAI_SLURM_PARTITION" not in env
    assert "systemctl is-active slurmctld" in controller.calls_made()
    _assert_leaves_slurm_to_hyperpod(controller)

    login = _node(tmp_path / "l", "login", neuron_devices=0, efa_devices=0)
    assert login.run().returncode == 0
    assert "export GENAI_NODE_TYPE='Login'" in login.env_file.read_text()
    assert not [c for c in login.calls_made() if c.startswith("systemctl")]


def test_a_second_run_changes_nothing_and_a_rerun_repairs(tmp_path):
    node = _node(tmp_path, "trn1n")
    assert node.run().returncode == 0
    first = _state(node)

    assert node.run().returncode == 0  # idempotent
    assert _state(node) == first

    # Drift: a lost directory, a tightened mode, a hand-edited environment file; the re-run restores all three.
    (node.root / "fsx/checkpoints").rmdir()
    (node.root / "fsx/data").chmod(0o700)
    node.env_file.write_text("export GENAI_CHECKPOINT_DIR=/tmp\n")
    assert node.run().returncode == 0
    assert _state(node) == first
    assert node.log.count("genai-cdk lifecycle: done") == 3
    assert not list(node.env_file.parent.glob("genai-cdk.sh.*"))  # no temporary files left behind


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda node: {"FAKE_FSX_MOUNTED": "0"}, "not a mountpoint"),
        (lambda node: (node.root / "proc/mounts").write_text("/dev/nvme1n1 /fsx ext4 rw 0 0\n") and {}, "not lustre"),
    ],
    ids=["not-mounted", "not-lustre"],
)
def test_fsx_not_mounted_fails_with_a_clear_error(tmp_path, setup, reason):
    node = _node(tmp_path, "trn1n")
    result = node.run(**(setup(node) or {}))
    assert result.returncode != 0, reason
    message = "ERROR: FSx for Lustre is not mounted at /fsx after 0s"
    assert message in result.stdout and message in node.log
    assert "FsxLustreConfig" in result.stdout  # says where the mount comes from
    assert not (node.root / "fsx/checkpoints").exists() and not node.env_file.exists()


def test_fsx_wait_polls_until_the_timeout(tmp_path):
    node = _node(tmp_path, "trn1n")
    result = node.run(FAKE_FSX_MOUNTED="0", GENAI_FSX_WAIT_SECONDS="2", GENAI_FSX_POLL_SECONDS="1")
    assert result.returncode == 1
    assert result.stdout.count("waiting for FSx for Lustre at /fsx") == 2
    assert "not mounted at /fsx after 2s" in result.stdout


def test_a_trainium_node_without_neuron_devices_fails(tmp_path):
    node = _node(tmp_path, "trn1n", neuron_devices=0)
    result = node.run()
    assert result.returncode == 1
    assert "ERROR: no neuron devices on this ml.trn1n.32xlarge node (expected 16 under /dev)" in result.stdout


def test_missing_efa_fails_and_fewer_devices_only_warn(tmp_path):
    no_efa = _node(tmp_path / "a", "trn1n", efa_devices=0)
    result = no_efa.run()
    assert result.returncode == 1 and "no EFA device under /sys/class/infiniband" in result.stdout

    degraded = _node(tmp_path / "b", "trn1n", neuron_devices=12)
    result = degraded.run()
    assert result.returncode == 0 and "WARNING: 12 of 16 neuron devices present" in result.stdout


def test_a_gpu_group_without_efa_checks_gpus_only(tmp_path):
    node = _node(tmp_path, "eval", neuron_devices=0, efa_devices=0)
    for index in range(4):
        (node.root / f"dev/nvidia{index}").touch()
    (node.root / "dev/nvidiactl").touch()  # not a GPU
    result = node.run()
    assert result.returncode == 0, result.stdout
    assert "4 gpu devices present" in result.stdout
    env = node.env_file.read_text()
    assert "export GENAI_SLURM_PARTITION='eval'" in env and "FI_PROVIDER" not in env and "NEURON" not in env


def test_an_unknown_node_still_gets_fsx_and_its_environment(tmp_path):
    node = _node(tmp_path, "trn1n")
    result = node.run(FAKE_IPS="192.168.9.9")
    assert result.returncode == 0
    assert "WARNING: could not place this node in an instance group" in result.stdout
    assert "export GENAI_NODE_TYPE='Unknown'" in node.env_file.read_text()
    assert (node.root / "fsx/checkpoints").is_dir()


def test_without_the_shared_user_directories_are_sticky_and_root_owned(tmp_path):
    node = _node(tmp_path, "controller")
    result = node.run(FAKE_USER_EXISTS="0")
    assert result.returncode == 0
    assert _mode(node.root / "fsx/checkpoints") == 0o1777
    assert f"chown root:root {node.root}/fsx/checkpoints" in node.calls_made()


def test_any_failing_step_stops_the_script_and_is_logged(tmp_path):
    node = _node(tmp_path, "trn1n")
    result = node.run(FAKE_CHOWN_FAILS="1")
    assert result.returncode == 1
    assert "ERROR: command failed (exit 1) at line" in node.log and 'chown "$OWNER"' in node.log
    assert not node.env_file.exists()


def test_a_missing_cluster_conf_fails(tmp_path):
    node = _node(tmp_path, "trn1n")
    (node.scripts / CLUSTER_CONF).unlink()
    result = node.run()
    assert result.returncode == 1
    assert "genai_cluster.conf is missing: the TrainiumCluster construct writes it" in result.stdout


def test_the_shipped_scripts_are_strict_bash_and_defer_to_nothing():
    scripts = sorted(LIFECYCLE_SCRIPTS.glob("*.sh"))
    assert [s.name for s in scripts] == ["on_create.sh"]
    for script in scripts:
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n")
        assert "\nset -Eeuo pipefail\n" in text
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
        assert "on_create_site" not in text
    assert not (LIFECYCLE_SCRIPTS / "provisioning_parameters.json").exists()
