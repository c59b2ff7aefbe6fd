"""The Lambdas' container image (RAG and agents), built at deploy time from the installed packages.

One image serves every function: ``assets/lambda_image/Dockerfile`` over a build context of its
``requirements.txt`` and the ``genai_contracts``, ``genai_runtime`` and ``lambdas`` packages as installed
beside ``genai_cdk`` (the wheel carries all four; an editable install resolves to the repository's
folders). The context is written to a folder named by its content hash, so the asset hash, and
with it the deployed image, changes only when the handlers, the runtime or the pins change.

Whatever image a construct gets, each function runs its own handler as the image command
(:data:`HANDLERS`; see ``functions.vpc_function``). To deploy a prebuilt image instead::

    python -m genai_cdk.lambda_image ./lambda-image && docker build -t genai-lambdas ./lambda-image
    # push it to ECR, then: code=aws_lambda.DockerImageCode.from_ecr(repository, tag_or_digest="...")
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

from aws_cdk import aws_lambda as lambda_

RECIPE = Path(__file__).parent / "assets" / "lambda_image"
RECIPE_FILES = ("Dockerfile", "requirements.txt")

INGEST_HANDLER = "lambdas.rag_ingest.handler"
QUERY_HANDLER = "lambdas.rag_query.handler"
INDEX_HANDLER = "lambdas.opensearch_index.on_event"
CLAIMS_HANDLER = "lambdas.claims_action_group.handler"
AGENT_API_HANDLER = "lambdas.agent_api.handler"
HANDLERS = {
    "IngestionPipeline": INGEST_HANDLER,
    "RagApi": QUERY_HANDLER,
    "VectorStore": INDEX_HANDLER,  # a managed domain's index custom resource
    "ClaimsActionGroup": CLAIMS_HANDLER,
    "AgentApi": AGENT_API_HANDLER,
}

# The packages the image copies, each with files that tell it is ours (a package of the same name
# from another distribution must not end up in the image). Located, never imported: the construct
# library does not import the runtime or the handlers.
PACKAGES = {
    "genai_contracts": ("names.py", "api_requests.py", "vector_index.py"),
    "genai_runtime": ("errors.py", "rag/__init__.py", "agents/deployed.py"),
    "lambdas": tuple(f"{handler.split('.')[1]}.py" for handler in HANDLERS.values()),
}


def package_folder(name: str) -> Path:
    """The installed folder of package ``name`` (found on ``sys.path`` without importing it)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location)
        if all((folder / marker).is_file() for marker in PACKAGES[name]):
            return folder
    markers = ", ".join(PACKAGES[name])
    found = f"{', '.join(locations)} lacks {markers}" if locations else "it is not importable"
    raise ValueError(
        f"the Lambda image needs the {name!r} package that the genai-cdk wheel installs, but {found}: "
        "reinstall genai-cdk (pip install --force-reinstall genai-cdk), "
        "or pass code=aws_lambda.DockerImageCode.from_ecr(repository, tag_or_digest=...) with an image built by "
        "`python -m genai_cdk.lambda_image DIR` (the construct sets each function's handler itself)."
    )


def _context_files() -> list[tuple[str, Path]]:
    """(path in the build context, source file), in a stable order."""
    files = [(name, RECIPE / name) for name in RECIPE_FILES]
    for name in PACKAGES:
        folder = package_folder(name)
        files += sorted(
            (f"{name}/{path.relative_to(folder).as_posix()}", path)
            for path in folder.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
        )
    return files


def write_build_context(directory: str | Path) -> Path:
    """Write the image's build context (Dockerfile, requirements.txt and the packages' folders) to ``directory``."""
    target = Path(directory)
    for relative, source in _context_files():
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        destination.chmod(0o644)  # Lambda runs the code as a non-root user: files must be world-readable
    for folder in [target, *(p for p in target.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)
    return target


def build_context() -> Path:
    """The build context in a folder named by its content hash (reused while it is intact)."""
    files = [(relative, source.read_bytes()) for relative, source in _context_files()]
    digest = hashlib.sha256()
    for relative, content in files:
        digest.update(relative.encode() + b"\0" + hashlib.sha256(content).digest())
    root = Path(tempfile.gettempdir()) / "genai-cdk-lambda-image"
    target = root / digest.hexdigest()[:32]
    if _holds(target, files):
        return target
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    write_build_context(partial)
    if not _holds(target, files):  # a target appears whole (by rename), so only a thinned-out one is removed
        shutil.rmtree(target, ignore_errors=True)
        try:
            partial.rename(target)
        except OSError:  # another process wrote the same context first
            pass
    shutil.rmtree(partial, ignore_errors=True)
    if not _holds(target, files):
        raise RuntimeError(f"could not write the Lambda image's build context to {target}")
    return target


def _holds(folder: Path, files: list[tuple[str, bytes]]) -> bool:
    if not folder.is_dir():
        return False
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    if present != {relative for relative, _ in files}:
        return False
    return all((folder / relative).read_bytes() == content for relative, content in files)


def lambda_image_code() -> lambda_.DockerImageCode:
    """The image, built from the installed packages at deploy time; the function sets its handler."""
    return lambda_.DockerImageCode.from_image_asset(str(build_context()))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m genai_cdk.lambda_image DIR   (writes the Lambda image's build context to DIR)")
    print(write_build_context(sys.argv[1]))
