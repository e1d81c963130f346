"""The API's error responses, raised by handlers and rendered by the server."""

ERROR_CODES = {
    400: ("Bad request", "BAD REQUEST"),
    401: ("API Key is either not provided or not valid", "UNAUTHORIZED"),
    403: ("Access denied", "FORBIDDEN"),
    404: ("Not found", "NOT FOUND"),
    405: ("Method not allowed", "METHOD NOT ALLOWED"),
    409: ("Conflict", "CONFLICT"),
    411: ("Length required", "LENGTH REQUIRED"),
    413: ("Request entity too large", "REQUEST ENTITY TOO LARGE"),
    415: ("Unsupported media type", "UNSUPPORTED MEDIA TYPE"),
    429: ("Too many requests", "TOO MANY REQUESTS"),
    500: ("Internal server error", "INTERNAL SERVER ERROR"),
    502: ("Bad gateway", "BAD GATEWAY"),
    503: ("Service unavailable", "SERVICE UNAVAILABLE"),
    504: ("Gateway timeout", "GATEWAY TIMEOUT"),
}


class ApiFailure(Exception):
    """An error answer: status, message and per-field errors in the reference's format."""

    def __init__(self, status: int, message: str | None = None, errors=(), headers=None):
        default_message, self.code = ERROR_CODES.get(status, ("Error", "ERROR"))
        self.status = status
        self.message = message or default_message
        self.errors = list(errors)
        self.headers = dict(headers or {})
        super().__init__(f"{status} {self.message}")

    def body(self) -> dict:
        """The JSON error document."""
        return {
            "message": self.message,
            "errorCode": self.code,
            "_embedded": {"errors": self.errors},
        }


def field_error(path: str, message: str, rejected=None, source: str = "JSON") -> dict:
    """One entry of `_embedded.errors`; rejectedValue only when one is given."""
    entry = {"path": path, "message": message}
    if rejected is not None:
        entry["rejectedValue"] = rejected
    entry["source"] = source
    return entry


def bad_request(errors) -> ApiFailure:
    """A 400 carrying the given field errors."""
    return ApiFailure(400, "Bad request", errors)


def not_found(what: str = "Resource") -> ApiFailure:
    """A 404 for a missing entity."""
    return ApiFailure(404, f"{what} not found")
