"""One error hierarchy for the core; the web layer maps it to HTTP once, the CLI to exit codes once."""


class GridmapError(Exception):
    """Base of every error gridmap reports to a user.

    ``message`` is safe to show; ``status`` is the HTTP status the web layer uses;
    ``detail`` carries structured data (problem lists) for JSON bodies.
    """

    status = 500
    code = "error"
    #: Longest message sent: one that quotes an input never echoes more than a prefix of it.
    MAX_MESSAGE = 500

    def __init__(self, message: str, detail=None):
        if len(message) > self.MAX_MESSAGE:
            message = message[: self.MAX_MESSAGE - 1] + "…"
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


class Conflict(GridmapError):
    """The request clashes with what is stored: a grid code retired or issued for another level (409)."""

    status = 409
    code = "conflict"


class Gone(GridmapError):
    """The named object existed but was retired (410). ``detail`` has its last state and where it went."""

    status = 410
    code = "gone"


class DatabaseUnavailable(GridmapError):
    """The database cannot be reached or is not set up (503)."""

    status = 503
    code = "database_unavailable"
    http_headers = {"Retry-After": "5"}


class PayloadTooLarge(GridmapError):
    """A request carries more items than allowed (413)."""

    status = 413
    code = "payload_too_large"


class EditRejected(GridmapError):
    """A boundary edit would break the hierarchy; nothing was written (422). ``detail`` lists the
    problems, each with its area and the offending piece as GeoJSON."""

    status = 422
    code = "edit_rejected"


class PreconditionFailed(GridmapError):
    """An edit was based on a version that is no longer current (412). ``detail`` has the current ETags."""

    status = 412
    code = "precondition_failed"


class PreconditionRequired(GridmapError):
    """An edit over HTTP did not say which version it is based on (428)."""

    status = 428
    code = "precondition_required"


class Unauthorized(GridmapError):
    """No usable credentials: no token, an unknown, revoked or expired one, a disabled user (401).

    ``http_headers`` go out with the response (the web layer adds them).
    """

    status = 401
    code = "unauthorized"
    http_headers = {"WWW-Authenticate": 'Bearer realm="gridmap"'}

    def __init__(self, message: str, detail=None, *, invalid_token: bool = False):
        super().__init__(message, detail)
        if invalid_token:  # RFC 6750 §3.1
            self.http_headers = {"WWW-Authenticate": 'Bearer realm="gridmap", error="invalid_token"'}


class Forbidden(GridmapError):
    """The credentials are good but their role is not allowed to do this (403)."""

    status = 403
    code = "forbidden"


class WorkLimit(GridmapError):
    """A request's work ran past its time budget, or its client went away; it stopped, nothing was
    written (503, with ``Retry-After``)."""

    status = 503
    code = "work_limit"
    http_headers = {"Retry-After": "30"}


class Busy(GridmapError):
    """The rows a write needs are held by another write for longer than the lock timeout (503, with
    ``Retry-After``); nothing was written."""

    status = 503
    code = "busy"
    http_headers = {"Retry-After": "5"}
