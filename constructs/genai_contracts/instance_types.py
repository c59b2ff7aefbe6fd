"""What each accelerated SageMaker hosting instance type carries.

The table drives validation (tensor-parallel degree vs accelerator count), the choice of
LMI image flavor, and whether an endpoint config may set a KMS key for the storage volume
(SageMaker rejects ``KmsKeyId`` on instance types with local NVMe storage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._validation import invalid

AcceleratorKind = Literal["neuron", "gpu"]


@dataclass(frozen=True)
class InstanceSpec:
    """What the toolkit knows of one SageMaker instance type.

    :param instance_type: the SageMaker name, e.g. ``ml.inf2.48xlarge``.
    :param accelerator: ``neuron`` (Inferentia2/Trainium) or ``gpu``.
    :param accelerator_count: NeuronCores or GPUs: the tensor-parallel ceiling and the processes per host.
    :param local_nvme: instance storage that SageMaker encrypts itself (no ``KmsKeyId`` for it).
    """

    instance_type: str
    accelerator: AcceleratorKind
    accelerator_count: int
    """NeuronCores for Inferentia2/Trainium, GPUs otherwise: the tensor-parallel ceiling."""
    local_nvme: bool
    """Instance storage is hardware-encrypted; SageMaker refuses a KmsKeyId for it."""

    @property
    def flavor(self) -> str:
        """The LMI image flavor that runs on this instance type."""
        return "neuronx" if self.accelerator == "neuron" else "lmi"


def _family(
    prefix: str, accelerator: AcceleratorKind, counts: dict[str, int], local_nvme: bool
) -> dict[str, InstanceSpec]:
    return {
        f"ml.{prefix}.{size}": InstanceSpec(f"ml.{prefix}.{size}", accelerator, count, local_nvme)
        for size, count in counts.items()
    }


_SINGLE_GPU_SIZES = {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1}

INSTANCE_SPECS: dict[str, InstanceSpec] = {
    # Inferentia2: 2 NeuronCores per chip.
    **_family("inf2", "neuron", {"xlarge": 2, "8xlarge": 2, "24xlarge": 12, "48xlarge": 24}, False),
    # Trainium: 2 NeuronCores per chip; 16 chips on the 32xlarge sizes.
    **_family("trn1", "neuron", {"2xlarge": 2, "32xlarge": 32}, True),
    **_family("trn1n", "neuron", {"32xlarge": 32}, True),
    **_family("g4dn", "gpu", {**_SINGLE_GPU_SIZES, "12xlarge": 4}, True),
    **_family("g5", "gpu", {**_SINGLE_GPU_SIZES, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}, True),
    **_family("g6", "gpu", {**_SINGLE_GPU_SIZES, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}, True),
    **_family("g6e", "gpu", {**_SINGLE_GPU_SIZES, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}, True),
    **_family("p4d", "gpu", {"24xlarge": 8}, True),
    **_family("p4de", "gpu", {"24xlarge": 8}, True),
    **_family("p5", "gpu", {"48xlarge": 8}, True),
    **_family("p5e", "gpu", {"48xlarge": 8}, True),
}


def instance_spec(instance_type: str, prop: str = "instance_type") -> InstanceSpec:
    """Look up an instance type, or raise a ValueError that lists the known families."""
    spec = INSTANCE_SPECS.get(instance_type)
    if spec is None:
        families = sorted({name.split(".")[1] for name in INSTANCE_SPECS})
        raise invalid(
            prop,
            instance_type,
            "use an accelerated SageMaker hosting type such as ml.inf2.xlarge or ml.g5.2xlarge "
            f"(known families: {', '.join(families)}).",
        )
    return spec
