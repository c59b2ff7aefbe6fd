#!/usr/bin/env bash
# genai-cdk HyperPod on-create lifecycle script (LifeCycleConfig.OnCreate), run as root on every node when it
# joins the cluster; UpdateClusterSoftware re-runs it on every node, so each step is idempotent and a re-run
# repairs what drifted.
#
# What this script relies on, and what it leaves alone:
# - Slurm is configured through the HyperPod API (Orchestrator.Slurm + SlurmConfig per instance group). HyperPod's
#   "Migrating to API-driven Slurm configuration" guide: "HyperPod handles Slurm topology setup and Amazon FSx
#   mounting automatically ... keep only custom setup steps such as user creation, package installation, and
#   environment configuration". So there is no provisioning_parameters.json here (HyperPod refuses a cluster with
#   both), no slurm.conf edit (the Managed strategy fails an update on drift) and no slurmctld/slurmd start: the
#   script never calls `systemctl start|restart|enable` and only reports the daemon's state.
# - FSx for Lustre is mounted by HyperPod at /fsx from the group's InstanceStorageConfigs. The script waits for
#   the mount (a mountpoint with type lustre in /proc/mounts, as awsome-distributed-training's
#   utils/fsx_auto_detect.sh checks it) and fails if it never comes: a node without /fsx cannot train.
# - This node's instance group comes from /opt/ml/config/resource_config.json (SAGEMAKER_RESOURCE_CONFIG_PATH when
#   set): InstanceGroups[].Name and Instances[].CustomerIpAddress matched against `hostname -I`, as the
#   awsome-distributed-training base-config lifecycle_script.py does. The Slurm node type, partition and expected
#   accelerators of each group come from genai_cluster.conf, which the TrainiumCluster construct writes next to
#   this script at synth time.
# - The HyperPod Slurm AMI's default user is `ubuntu` (GENAI_SHARED_USER to change): it owns the shared
#   directories /fsx/checkpoints, /fsx/data and /fsx/genai (setgid, group-writable), so jobs need no root to
#   write there. /fsx/data is the data repository association linked to the S3 data bucket; /fsx/genai is where
#   `genai train slurm-script` puts its virtualenv and job outputs.
# - Compiler and runtime flags of a training job (NEURON_CC_FLAGS, NCCL_*) belong to the job script; the
#   environment file below carries only facts of the node.
#
# Environment (for tests and manual runs): GENAI_ROOT (default /) prefixes every path the script touches;
# GENAI_FSX_WAIT_SECONDS / GENAI_FSX_POLL_SECONDS bound the wait for /fsx; GENAI_INSTANCE_GROUP skips the lookup.
set -Eeuo pipefail

ROOT="${GENAI_ROOT:-/}"
R="${ROOT%/}"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONF="${GENAI_CLUSTER_CONF:-$SCRIPT_DIR/genai_cluster.conf}"
LOG_DIR="$R/var/log/genai-cdk"
LOG="$LOG_DIR/lifecycle.log"
ENV_FILE="$R/etc/profile.d/genai-cdk.sh"
RESOURCE_CONFIG="${SAGEMAKER_RESOURCE_CONFIG_PATH:-$R/opt/ml/config/resource_config.json}"
FSX_WAIT_SECONDS="${GENAI_FSX_WAIT_SECONDS:-600}"
FSX_POLL_SECONDS="${GENAI_FSX_POLL_SECONDS:-10}"
SHARED_USER="${GENAI_SHARED_USER:-ubuntu}"

mkdir -p "$LOG_DIR"
log() { printf '%s genai-cdk lifecycle: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" | tee -a "$LOG"; }
warn() { log "WARNING: $*"; }
die() {
  log "ERROR: $*"
  exit 1
}
trap 'rc=$?; log "ERROR: command failed (exit $rc) at line $LINENO: $BASH_COMMAND"; exit $rc' ERR

log "node $(hostname) starting (root ${ROOT})"

# ---- the cluster's instance groups (genai_cluster.conf) -----------------------------------------------------
[ -f "$CONF" ] || die "$CONF is missing: the TrainiumCluster construct writes it next to on_create.sh; redeploy the stack."
CLUSTER_NAME=""
FSX="/fsx"
declare -A NODE_TYPE=() PARTITION=() INSTANCE_TYPE=() ACCELERATOR=() DEVICES=() EFA=()
while read -r kind name node_type partition instance_type accelerator devices efa; do
  case "$kind" in
    cluster) CLUSTER_NAME="$name" ;;
    fsx) FSX="$name" ;;
    group)
      NODE_TYPE[$name]="$node_type"
      PARTITION[$name]="$partition"
      INSTANCE_TYPE[$name]="$instance_type"
      ACCELERATOR[$name]="$accelerator"
      DEVICES[$name]="$devices"
      EFA[$name]="$efa"
      ;;
    "" | "#"*) ;;
    *) die "$CONF: unknown line '$kind $name ...'" ;;
  esac
done <"$CONF"

# ---- which instance group this node belongs to ----------------------------------------------------------------
lookup_group() {
  [ -f "$RESOURCE_CONFIG" ] || return 1
  command -v python3 >/dev/null 2>&1 || return 1
  # shellcheck disable=SC2046  # one argument per address
  python3 - "$RESOURCE_CONFIG" $(hostname -I 2>/dev/null || true) <<'PY'
import json
import sys

path, addresses = sys.argv[1], set(sys.argv[2:])
with open(path, encoding="utf-8") as handle:
    config = json.load(handle)
for group in config.get("InstanceGroups", []):
    for instance in group.get("Instances", []):
        if instance.get("CustomerIpAddress") in addresses:
            print(group.get("Name", ""))
            sys.exit(0)
sys.exit(1)
PY
}

GROUP="${GENAI_INSTANCE_GROUP:-}"
if [ -z "$GROUP" ]; then
  GROUP="$(lookup_group)" || GROUP=""
fi
if [ -n "$GROUP" ] && [ -n "${NODE_TYPE[$GROUP]+set}" ]; then
  TYPE="${NODE_TYPE[$GROUP]}"
  log "instance group $GROUP: Slurm $TYPE node (${INSTANCE_TYPE[$GROUP]}), partition ${PARTITION[$GROUP]}"
else
  warn "could not place this node in an instance group of $CONF (group '${GROUP}', resource config $RESOURCE_CONFIG); skipping the accelerator checks."
  TYPE="Unknown"
fi

# ---- FSx for Lustre at /fsx (mounted by HyperPod) ---------------------------------------------------------------
fsx_mounted() {
  mountpoint -q "$R$FSX" 2>/dev/null || return 1
  awk -v path="$FSX" '$2 == path && $3 == "lustre" { found = 1 } END { exit !found }' "$R/proc/mounts" 2>/dev/null
}
waited=0
until fsx_mounted; do
  if [ "$waited" -ge "$FSX_WAIT_SECONDS" ]; then
    die "FSx for Lustre is not mounted at $FSX after ${waited}s (no lustre mount in /proc/mounts). HyperPod mounts it from the instance group's FsxLustreConfig: check the file system, its security group (Lustre ports 988, 1018-1023) and the node's subnet."
  fi
  log "waiting for FSx for Lustre at $FSX (${waited}s of ${FSX_WAIT_SECONDS}s)"
  sleep "$FSX_POLL_SECONDS"
  waited=$((waited + FSX_POLL_SECONDS))
done
log "FSx for Lustre mounted at $FSX"

# ---- shared directories: checkpoints, the S3-linked data, the genai runtime's outputs ---------------------------
if id -u "$SHARED_USER" >/dev/null 2>&1; then
  OWNER="$SHARED_USER:$(id -gn "$SHARED_USER")"
  MODE=2775
else
  warn "user $SHARED_USER does not exist; the shared directories stay root-owned and world-writable (sticky)."
  OWNER="root:root"
  MODE=1777
fi
for dir in "$FSX/checkpoints" "$FSX/data" "$FSX/genai"; do
  mkdir -p "$R$dir"
  chown "$OWNER" "$R$dir"
  chmod "$MODE" "$R$dir"
  log "shared directory $dir: owner $OWNER, mode $MODE"
done

# ---- accelerators and EFA on compute nodes ------------------------------------------------------------------------
count() { # count PATTERN...: how many of the globbed paths exist
  local n=0 path
  for path in "$@"; do [ -e "$path" ] && n=$((n + 1)); done
  echo "$n"
}
ACCEL="none"
HAS_EFA="no"
if [ "$TYPE" = "Compute" ]; then
  ACCEL="${ACCELERATOR[$GROUP]}"
  expected="${DEVICES[$GROUP]}"
  case "$ACCEL" in
    neuron) found="$(count "$R"/dev/neuron[0-9]*)" ;;
    gpu) found="$(count "$R"/dev/nvidia[0-9]*)" ;;
    *) found=0 ;;
  esac
  if [ "$ACCEL" != "none" ]; then
    if [ "$found" -eq 0 ]; then
      die "no $ACCEL devices on this ${INSTANCE_TYPE[$GROUP]} node (expected $expected under /dev): the driver is not loaded; the node cannot train."
    elif [ "$found" -lt "$expected" ]; then
      warn "$found of $expected $ACCEL devices present; deep health checks and node recovery replace faulty nodes."
    else
      log "$found $ACCEL devices present"
    fi
  fi
  efa_devices="$(count "$R"/sys/class/infiniband/*)"
  if [ "${EFA[$GROUP]}" = "yes" ]; then
    [ "$efa_devices" -gt 0 ] || die "no EFA device under /sys/class/infiniband on this ${INSTANCE_TYPE[$GROUP]} node: multi-node training needs EFA."
    log "$efa_devices EFA devices present"
    HAS_EFA="yes"
  fi
  if [ "$ACCEL" = "neuron" ] && command -v neuron-ls >/dev/null 2>&1; then
    neuron-ls >>"$LOG" 2>&1 || warn "neuron-ls failed; see $LOG"
  fi
fi

# ---- the genai environment for login shells and job scripts -------------------------------------------------------
mkdir -p "$(dirname "$ENV_FILE")"
tmp="$(mktemp "$ENV_FILE.XXXXXX")"
{
  echo "# Written by the genai-cdk lifecycle script (on_create.sh); a re-run rewrites it."
  echo "export GENAI_CLUSTER_NAME='$CLUSTER_NAME'"
  echo "export GENAI_INSTANCE_GROUP='$GROUP'"
  echo "export GENAI_NODE_TYPE='$TYPE'"
  if [ "$TYPE" = "Compute" ]; then echo "export GENAI_SLURM_PARTITION='${PARTITION[$GROUP]}'"; fi
  echo "export GENAI_FSX_DIR='$FSX'"
  echo "export GENAI_DATA_DIR='$FSX/data'"
  echo "export GENAI_CHECKPOINT_DIR='$FSX/checkpoints'"
  if [ "$HAS_EFA" = "yes" ]; then
    echo "export FI_PROVIDER=efa"
    echo "export FI_EFA_USE_DEVICE_RDMA=1"
    echo "export FI_EFA_FORK_SAFE=1"
  fi
} >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$ENV_FILE"
log "wrote ${ENV_FILE#"$R"}"

# ---- Slurm: HyperPod runs it; report only ---------------------------------------------------------------------
case "$TYPE" in
  Controller) daemon=slurmctld ;;
  Compute) daemon=slurmd ;;
  *) daemon="" ;;
esac
if [ -n "$daemon" ] && command -v systemctl >/dev/null 2>&1; then
  log "$daemon is $(systemctl is-active "$daemon" 2>/dev/null || true) (HyperPod starts and configures Slurm)"
fi

log "done"
