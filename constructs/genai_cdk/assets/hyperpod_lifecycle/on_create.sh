#!/usr/bin/env bash
# HyperPod on-create lifecycle hook, run as root on every node when it joins the cluster.
# SageMaker copies this folder from the lifecycle bucket and runs it from there.
set -euo pipefail
exec > >(tee -a /var/log/genai-cdk-lifecycle.log) 2>&1
echo "genai-cdk lifecycle: node $(hostname) joining at $(date -Is)"

# Neuron runtime settings for Trainium nodes (no-op elsewhere).
if ls /dev/neuron* >/dev/null 2>&1; then
  cat >/etc/profile.d/genai-neuron.sh <<'PROFILE'
export NEURON_RT_NUM_CORES=32
export FI_EFA_USE_DEVICE_RDMA=1
export FI_PROVIDER=efa
export NEURON_CC_FLAGS="--model-type=transformer"
PROFILE
fi

# The FSx for Lustre file system is mounted by HyperPod itself (instance storage config) at /fsx.
mkdir -p /fsx
# Site-specific set-up (Slurm configuration, users) goes in on_create_site.sh next to this file.
if [ -x "$(dirname "$0")/on_create_site.sh" ]; then
  "$(dirname "$0")/on_create_site.sh"
fi
echo "genai-cdk lifecycle: done"
