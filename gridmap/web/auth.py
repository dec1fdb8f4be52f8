"""Who may call what: bearer tokens, roles per route, and one check before every request.

Every view declares who may call it with :func:`require` (or :func:`public`); one ``before_request``
hook (:func:`init_app`) enforces it.  Undeclared views:

- ``GET``/``HEAD`` are reads: open by default, or a ``viewer`` token and above when the deployment
  says so (``GRIDMAP_AUTH_READ=viewer``, app config ``AUTH_READ``);
- any other method is refused (403) until a role is declared: a new write route cannot ship open.
  ``tests/test_auth.py`` walks ``app.url_map`` and fails on it, and on any route missing from the
  README's roles table.

Usage::

    @bp.post("/edits")
    @require("planner")                      # planner or above (admin)
    def edit(): ...

    @bp.route("/items", methods=["GET", "POST"])
    @require("planner", methods=["POST"])    # GET stays a read
    def items(): ...

    @require(READ, "ingest")                 # a read that scripts (ingest tokens) may also make

Credentials: ``Authorization: Bearer gm_…``.  No token, an unknown, revoked or expired token, or a
disabled user: 401 with ``WWW-Authenticate: Bearer realm="gridmap"``.  A good token whose role is not
enough: 403 naming the role needed.  Tokens are never taken from the query string (it ends up in
logs).  Each authenticated request costs one indexed query (no cache, so a revoked token is refused
at once); ``last_used_at`` is written at most once a minute per token.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g, request

from ..domain import roles
from ..errors import Forbidden, InputError, Unauthorized
from ..services import users
from .context import engine

#: Pseudo-role: a read.  Anyone with ``AUTH_READ=open``; ``viewer`` and above with ``AUTH_READ=viewer``.
READ = "read"
#: Pseudo-role: always open (the map page and its static files, so the page can ask for a token).
PUBLIC = "public"
READ_MODES = ("open", "viewer")
ENV_READ = "GRIDMAP_AUTH_READ"
#: Endpoints Flask makes itself (static files), open like the page.
PUBLIC_ENDPOINTS = frozenset({"static", "pages.static"})
_ATTR = "_gridmap_access"


@dataclass(frozen=True)
class Actor:
    name: str
    role: str


def require(*needed: str, methods=None):
    """Declare who may call a view: roles (``"planner"``: planner or any role above it; ``"ingest"``:
    scripts' tokens, listed explicitly), :data:`READ` or :data:`PUBLIC`; for ``methods`` of the route
    only (default: all of them).  Works above or below the route decorator."""
    if not needed:
        raise ValueError("require() needs at least one role")
    for n in needed:
        if n not in (READ, PUBLIC):
            roles.check_role(n)

    def mark(view):
        table = view.__dict__.setdefault(_ATTR, {})
        for m in methods or ["*"]:
            table[m.upper()] = tuple(needed)
        return view

    return mark


def public(view):
    """Open to everyone, whatever ``AUTH_READ`` says."""
    return require(PUBLIC)(view)


def access(app: Flask, endpoint: str, method: str) -> tuple[str, ...] | None:
    """What calling ``endpoint`` with ``method`` needs; None: a write nobody declared (refused)."""
    if endpoint in PUBLIC_ENDPOINTS:
        return (PUBLIC,)
    view = app.view_functions.get(endpoint)
    table = getattr(view, _ATTR, {})
    method = "GET" if method == "HEAD" else method.upper()
    if method in table:
        return table[method]
    if "*" in table:
        return table["*"]
    return (READ,) if method == "GET" else None


def describe(needed: tuple[str, ...] | None) -> str:
    """How the README's roles table says it: ``public``, ``read``, ``read, ingest``, ``planner+``…"""
    if needed is None:
        return "UNDECLARED"
    staff = tuple(n for n in needed if n not in (READ, PUBLIC))
    words = [n for n in (PUBLIC, READ) if n in needed]
    return ", ".join(words + ([roles.describe(staff)] if staff else []))


def route_table(app: Flask) -> list[tuple[str, str, str]]:
    """Every (method, route, who may call it) of the app, sorted; HEAD and OPTIONS left out."""
    rows = set()
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            rows.add((method, rule.rule, describe(access(app, rule.endpoint, method))))
    return sorted(rows, key=lambda r: (r[1], r[0]))


def read_mode(value: str | None) -> str:
    """``AUTH_READ`` (the settings' ``auth_read``): ``open`` (default) or ``viewer``; anything else is an
    error naming the setting."""
    value = value or "open"
    if value not in READ_MODES:
        raise InputError(f"{ENV_READ} (AUTH_READ) must be open or viewer, got {value!r}")
    return value


def init_app(app: Flask, auth_read: str | None) -> None:
    app.config["AUTH_READ"] = read_mode(auth_read)
    app.before_request(_check)


def _check():
    if request.method == "OPTIONS" or request.endpoint is None:  # routing errors (404, 405) go on
        return None
    needed = access(current_app, request.endpoint, request.method)
    where = f"{request.method} {request.path}"
    if needed is None:
        raise Forbidden(f"{where} has no role declared, so nobody may call it (gridmap/web/auth.py)")
    if PUBLIC in needed or (READ in needed and current_app.config["AUTH_READ"] == "open"):
        return None  # open: a token, if any, is not even looked at
    actor = authenticate()
    wanted = tuple("viewer" if n == READ else n for n in needed)
    if not roles.allowed_by_any(actor.role, wanted):
        raise Forbidden(
            f"{where} needs the role {roles.describe(wanted)} ('+': or above); {actor.name!r} is {actor.role}"
        )
    return None


def bearer_token() -> str:
    """The request's bearer token; Unauthorized saying what is wrong with the header."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise Unauthorized(
            f"{request.method} {request.path} needs a token: send 'Authorization: Bearer <token>' "
            "(sign in on the map, or an admin makes one with `gridmap users add NAME --role ROLE`)"
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the Authorization header must be 'Bearer <token>'", invalid_token=True)
    return token


def authenticate() -> Actor:
    """The user behind the request's bearer token (cached on ``g``), or Unauthorized saying why not."""
    if "gridmap_actor" in g:
        return g.gridmap_actor
    token = bearer_token()
    found = users.authenticate(engine(), token)
    if found is None:
        raise Unauthorized("unknown token", invalid_token=True)
    if found["refused"]:
        raise Unauthorized(found["refused"], invalid_token=True)
    g.gridmap_actor = Actor(found["name"], found["role"])
    return g.gridmap_actor


def current_actor() -> str:
    """The name of the user making this request, for the audit log (``anonymous`` on an open read)."""
    actor = g.get("gridmap_actor")
    return actor.name if actor else "anonymous"
