"""Users, roles and API tokens: the admin commands and the check of a request's token."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from ..domain import roles
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
