"""``serving.properties`` for an LMI model folder, rendered from the same ``LmiOptions`` that
``LmiEndpoint`` turns into ``OPTION_*`` variables, so the two never disagree.
"""

from __future__ import annotations

from pathlib import Path

from genai_cdk.instance_types import instance_spec
from genai_cdk.lmi_options import LmiOptions

HANDLER_ENTRY_POINT = "genai_runtime.inference.lmi_handler"


def render_serving_properties(options: LmiOptions, instance_type: str, *, custom_handler: bool = False) -> str:
    """The file's text; ``custom_handler`` routes requests through this project's handler."""
    spec = instance_spec(instance_type)
    options.validate_for(spec)
    text = options.to_serving_properties(spec)
    if custom_handler:
        text += f"option.entryPoint={HANDLER_ENTRY_POINT}\n"
    return text


def write_serving_properties(folder: str | Path, options: LmiOptions, instance_type: str, *,
                             custom_handler: bool = False) -> Path:
    path = Path(folder) / "serving.properties"
    path.write_text(render_serving_properties(options, instance_type, custom_handler=custom_handler))
    return path
