"""``serving.properties`` for an LMI model folder, rendered from the same ``LmiOptions`` that
``LmiEndpoint`` turns into ``OPTION_*`` variables, so the two never disagree.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from genai_contracts.instance_types import instance_spec
from genai_contracts.lmi_options import LmiOptions

HANDLER_ENTRY_POINT = "genai_runtime.inference.lmi_handler"


def render_serving_properties(options: LmiOptions, instance_type: str, *, custom_handler: bool = False) -> str:
    """The file's text; ``custom_handler`` replaces LMI's engine with this project's handler, which
    ``LmiOptions`` allows only with ``rolling_batch="disable"`` (a ``ValueError`` says so otherwise)."""
    spec = instance_spec(instance_type)
    if custom_handler:
        options = dataclasses.replace(options, entry_point=HANDLER_ENTRY_POINT)
    options.validate_for(spec)
    return options.to_serving_properties(spec)


def write_serving_properties(
    folder: str | Path, options: LmiOptions, instance_type: str, *, custom_handler: bool = False
) -> Path:
    path = Path(folder) / "serving.properties"
    path.write_text(render_serving_properties(options, instance_type, custom_handler=custom_handler))
    return path
