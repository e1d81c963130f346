"""The library's exceptions: each carries enough to print one useful line."""


class EtlError(Exception):
    """Base class for failures the CLI reports as one line and a non-zero exit."""

    exit_code = 1

    def __reduce__(self):
        # Subclasses take other constructor arguments; rebuild from args and attributes so an
        # error raised in a child process arrives in the parent as itself.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type, args: tuple, state: dict) -> EtlError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ApiError(EtlError):
    """The API answered with an error status (after any retries)."""

    def __init__(self, status: int | None, method: str, path: str, detail: str = ""):
        self.status = status
        self.method = method
        self.path = path
        self.detail = detail
        where = f"{method} {path}"
        head = f"HTTP {status}" if status else "no response"
        super().__init__(f"{where}: {head}" + (f": {detail}" if detail else ""))


class AuthError(ApiError):
    """The API refused the key (401 or 403)."""

    exit_code = 4


class ValidationFailed(ApiError):
    """The API rejected a payload (400); `errors` holds its per-field messages."""

    def __init__(self, method: str, path: str, detail: str, errors: list[dict]):
        super().__init__(400, method, path, detail)
        self.errors = errors


class Conflict(ApiError):
    """The API refused a create because the entity exists (409)."""


class NotFound(ApiError):
    """The API answered 404."""


class LockedError(EtlError):
    """Another process holds the mirror's lock."""

    exit_code = 5


class MirrorError(EtlError):
    """The mirror database failed (locked too long, disk full): named, in one line."""


class ConfigError(EtlError):
    """A setting is missing or wrong (URL, key, file)."""

    exit_code = 2


class OutcomeUnknown(ApiError):
    """A create was sent but no answer came (timeout, dropped connection, 5xx): it may exist."""

    def __init__(self, method: str, path: str, detail: str):
        super().__init__(None, method, path, detail)


class PagingError(EtlError):
    """A list endpoint misbehaved (repeating or non-advancing pages)."""

    def __init__(self, path: str, detail: str):
        super().__init__(f"GET {path}: {detail}")
