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


class DependencyError(RuntimeError):
    """A service this code calls (SageMaker, Bedrock, DynamoDB, OpenSearch...) failed or is unavailable.

    ``retryable``: the same request may succeed later (throttled, unavailable, timed out); an API answers
    it with ``status`` 503 and a ``Retry-After`` of ``retry_after_s`` seconds. Otherwise the dependency
    failed or refused (an error in the model container, access denied, a missing endpoint) and ``status``
    is 502. ``service`` names the dependency, ``code`` is its error code when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str = "",
        code: str = "",
        retryable: bool = False,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.code = code
        self.retryable = retryable
        self.status = 503 if retryable else 502
        self.retry_after_s = retry_after_s if retry_after_s is not None else (5 if retryable else None)
