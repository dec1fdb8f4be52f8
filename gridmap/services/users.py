"""Users, roles and API tokens: the admin commands and the check of a request's token."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from ..domain import roles
from ..errors import Unauthorized
from ..store import users

#: The user `demo load` adds to a database without users, so the demo's write routes can be tried.
DEMO_ADMIN = "demo-admin"


def check_schema(eng: Engine) -> None:
    """DatabaseUnavailable with the fix when the users tables are missing."""
    with eng.connect() as conn:
        users.check_schema(conn)


def add(eng: Engine, name: str, role: str, *, label: str | None = None, expires_days: int | None = None) -> str:
    """A new user and its first token (returned in clear this once)."""
    with eng.begin() as conn:
        users.check_schema(conn)
        users.add_user(conn, name, role)
        return users.issue_token(conn, name, label=label, expires_days=expires_days)


def issue_token(eng: Engine, name: str, *, label: str | None = None, expires_days: int | None = None) -> str:
    """Another token for user ``name`` (returned in clear this once)."""
    with eng.begin() as conn:
        users.check_schema(conn)
        return users.issue_token(conn, name, label=label, expires_days=expires_days)


def list_users(eng: Engine) -> list[dict]:
    with eng.connect() as conn:
        users.check_schema(conn)
        return users.list_users(conn)


def revoke(eng: Engine, prefix: str) -> dict:
    """Refuse the token starting with ``prefix`` from now on; its prefix and user."""
    with eng.begin() as conn:
        users.check_schema(conn)
        return users.revoke_token(conn, prefix)


def disable(eng: Engine, name: str) -> None:
    with eng.begin() as conn:
        users.check_schema(conn)
        users.disable_user(conn, name)


def count_active(eng: Engine) -> int:
    with eng.connect() as conn:
        users.check_schema(conn)
        return users.count_users(conn)


def demo_admin(eng: Engine) -> dict:
    """A database without users gets :data:`DEMO_ADMIN` (role admin): ``{"token": …}``; otherwise
    ``{"existing": [user, …]}`` and nothing changes (users are kept across `demo load --fresh`)."""
    with eng.begin() as conn:
        users.check_schema(conn)
        if users.count_users(conn, active=False):
            return {"existing": users.list_users(conn)}
        users.add_user(conn, DEMO_ADMIN, "admin")
        return {"token": users.issue_token(conn, DEMO_ADMIN, label="demo")}


def authenticate(eng: Engine, token: str) -> dict | None:
    """The user behind ``token`` (name, role, ``refused``: why it is refused, None when usable);
    None for an unknown token.  A usable token's last use is recorded (at most once a minute)."""
    with eng.begin() as conn:
        found = users.resolve(conn, roles.token_hash(token))
        if found is not None and not found["refused"]:
            users.touch(conn, found)
        return found


def get(eng: Engine, name: str) -> dict:
    """User ``name`` (id, name, role, created and disabled times); NotFound naming it otherwise."""
    with eng.connect() as conn:
        users.check_schema(conn)
        return users.user(conn, name)


def set_password(eng: Engine, name: str, password: str | None) -> None:
    """Set (or with None remove) user ``name``'s map sign-in password; InputError when too short,
    NotFound for an unknown user."""
    hashed = roles.hash_password(password) if password is not None else None
    with eng.begin() as conn:
        users.check_schema(conn)
        users.set_password(conn, name, hashed)


def sign_in(eng: Engine, name: str, password: str) -> dict:
    """A fresh token (label ``sign-in``, expiring after :data:`roles.SESSION_DAYS`) for a right user name
    and password: ``{token, name, role}``; Unauthorized, the same for a wrong name or password."""
    with eng.begin() as conn:
        found = users.sign_in_record(conn, name)
        if not roles.password_matches(found["password_hash"] if found else None, password):
            raise Unauthorized("wrong user name or password", invalid_token=True)
        if found["disabled_at"] is not None:
            raise Unauthorized(f"user {name!r} is disabled", invalid_token=True)
        token = users.issue_token(conn, name, label=roles.SESSION_LABEL, expires_days=roles.SESSION_DAYS)
    return {"token": token, "name": found["name"], "role": found["role"], "expires_days": roles.SESSION_DAYS}


def sign_out(eng: Engine, token: str) -> bool:
    """Revoke ``token`` (the page's sign-out); whether it was live."""
    with eng.begin() as conn:
        return users.revoke_by_hash(conn, roles.token_hash(token))
