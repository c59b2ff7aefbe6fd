"""Errors the runtime raises for bad input, each with a message a user can act on."""


class UsageError(ValueError):
    """A bad argument, file or configuration; the CLI prints it as one line and exits 2."""


class MissingDependency(UsageError):
    """An optional library is not installed; the message says which extra brings it."""

    def __init__(self, package: str, extra: str, why: str = "") -> None:
        hint = f"pip install 'genai-cdk[{extra}]'"
        super().__init__(f"{package} is not installed{': ' + why if why else ''}; install it with {hint}")


def require(module: str, extra: str, why: str = ""):
    """Import ``module`` or raise ``MissingDependency`` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(module.split(".")[0], extra, why) from None
