"""The map page's sign-in (``/api/v1/session``): who the presented token belongs to, a token for a
user name and password, and signing out.  The page keeps the token the way a browser user expects
(this tab, or this computer with "keep me signed in"); every request is still checked by
:mod:`.auth` like any other token."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..domain import roles
from ..errors import InputError
from ..services import users
from . import params
from .auth import authenticate, bearer_token, public, require
from .context import engine

bp = Blueprint("session", __name__, url_prefix="/api/v1")
#: Staff of any role, and scripts, may ask who they are and sign out.
ANYONE_SIGNED_IN = ("viewer", "ingest")


def _me(name: str, role: str) -> dict:
    return {"name": name, "role": role, "may_edit": roles.allows(role, "planner")}


@bp.get("/session")
@require(*ANYONE_SIGNED_IN)
def whoami():
    """The user and role behind the request's token (401 without a usable one)."""
    actor = authenticate()
    return jsonify(_me(actor.name, actor.role))


@bp.post("/session")
@public  # signing in is how one gets a token
def sign_in():
    """``{"name", "password"}`` → 201 with a fresh expiring token; 401 for a wrong name or password."""
    body = params.json_body(dict, 'send {"name": "…", "password": "…"}')
    params.body_keys(body, ("name", "password"))
    name, password = params.body_str(body, "name"), params.body_str(body, "password")
    if not name or not password:
        raise InputError("name and password are required")
    found = users.sign_in(engine(), name, password)
    return jsonify({**_me(found["name"], found["role"]), **found}), 201


@bp.delete("/session")
@require(*ANYONE_SIGNED_IN)
def sign_out():
    """Revoke the request's token (a sign-in token; a script's token is revoked the same way)."""
    users.sign_out(engine(), bearer_token())
    return "", 204
