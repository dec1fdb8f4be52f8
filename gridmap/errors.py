"""One error hierarchy for the core; the web layer maps it to HTTP once, the CLI to exit codes once."""


class GridmapError(Exception):
    """Base of every error gridmap reports to a user.

    ``message`` is safe to show; ``status`` is the HTTP status the web layer uses;
    ``detail`` carries structured data (problem lists) for JSON bodies.
    """

    status = 500
    code = "error"

    def __init__(self, message: str, detail=None):
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return {"error": body}


class InputError(GridmapError):
    """A request or file the user gave is malformed (400)."""

    status = 400
    code = "bad_input"


class NotFound(GridmapError):
    """The named object does not exist (404)."""

    status = 404
    code = "not_found"


class ImportRejected(GridmapError):
    """An import found bad rows; nothing was written (422). ``detail`` lists every problem."""

    status = 422
    code = "import_rejected"


class DatabaseUnavailable(GridmapError):
    """The database cannot be reached or is not set up (503)."""

    status = 503
    code = "database_unavailable"


class PayloadTooLarge(GridmapError):
    """A request carries more items than allowed (413)."""

    status = 413
    code = "payload_too_large"
