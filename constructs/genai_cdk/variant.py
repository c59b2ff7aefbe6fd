"""A production (or shadow) variant of an endpoint."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ._validation import invalid, require_int, require_number
from .lmi_options import LmiOptions
from .model_artifact import ModelArtifact

_VARIANT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@dataclass(frozen=True)
class Variant:
    """One fleet behind the endpoint.

    Unset ``model``, ``instance_type`` and ``options`` inherit the endpoint's. Traffic is split
    across production variants by ``weight``; for a shadow variant, ``weight`` relative to the
    production variant's weight is the fraction of requests mirrored (1:1 mirrors all).
    Keep variant names stable: SageMaker's blue/green updates match fleets by name.
    """

    name: str
    weight: float = 1.0
    instance_count: int = 1
    model: ModelArtifact | None = None
    instance_type: str | None = None
    options: LmiOptions | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _VARIANT_NAME.match(self.name):
            raise invalid(
                "variant.name",
                self.name,
                "use 1-63 letters, digits and hyphens, starting and ending with a letter or digit.",
            )
        weight = require_number(f"variant[{self.name}].weight", self.weight, minimum=0.0)
        if math.isnan(weight) or math.isinf(weight):
            raise invalid(f"variant[{self.name}].weight", self.weight, "must be a finite number >= 0.")
        require_int(f"variant[{self.name}].instance_count", self.instance_count, minimum=1)
        if self.model is not None and not isinstance(self.model, ModelArtifact):
            raise invalid(f"variant[{self.name}].model", self.model, "use ModelArtifact.from_s3_prefix(...) etc.")
        if self.options is not None and not isinstance(self.options, LmiOptions):
            raise invalid(f"variant[{self.name}].options", self.options, "pass an LmiOptions(...).")
