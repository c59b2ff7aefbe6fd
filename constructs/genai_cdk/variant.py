"""A production (or shadow) variant of an endpoint."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ._validation import invalid, require_int, require_number
from .autoscaling import Autoscaling
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

    :param name: the variant's name, e.g. ``A``.
    :param instance_count: instances of this fleet (the initial count under autoscaling); default 1.
    :param autoscaling: this production variant's own ``Autoscaling``, in place of the endpoint's (e.g. a
        wider range for the 90 % variant of an A/B test than for the 10 % one); ``instance_count`` must lie
        within its ``min_capacity..max_capacity``, or Application Auto Scaling would move the fleet to the
        range at once and the count given would never be the one deployed. Not for a shadow variant.
    """

    name: str
    weight: float = 1.0
    instance_count: int = 1
    model: ModelArtifact | None = None
    instance_type: str | None = None
    options: LmiOptions | None = None
    autoscaling: Autoscaling | None = None

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
        if self.autoscaling is not None:
            if not isinstance(self.autoscaling, Autoscaling):
                raise invalid(f"variant[{self.name}].autoscaling", self.autoscaling, "pass an Autoscaling(...).")
            low, high = self.autoscaling.min_capacity, self.autoscaling.max_capacity
            if not low <= self.instance_count <= high:
                raise invalid(
                    f"variant[{self.name}].instance_count",
                    self.instance_count,
                    f"must lie within its autoscaling min_capacity..max_capacity ({low}..{high}); "
                    "change the count or the range.",
                )
