"""``gridmap users``: users, roles and API tokens (local admin actions: whoever runs the CLI has the
database)."""

from __future__ import annotations

import json

import click

from ..domain import dates
from ..domain.roles import ROLES
from ..services import users as user_service
from .common import engine, settings


@click.group()
def users():
    """Users, roles and API tokens. Local admin actions: whoever runs the CLI has the database."""


def show_token(token: str, name: str) -> None:
    click.echo(f"token for {name} (shown this once; only its hash is kept):", err=True)
    click.echo(token)


ROLE = click.option(
    "--role",
    required=True,
    type=click.Choice(ROLES),
    help=(
        "viewer < dispatcher < planner < admin; ingest: scripts (reports, risk elements, visits, lookups); "
        "roster: a street office's roster keeper; handler, verifier, supervisor: the event centre's loop."
    ),
)
LABEL = click.option("--label", help="What the token is for (shown by `users list`).")
EXPIRES = click.option("--expires-days", type=click.IntRange(min=1), help="The token stops working after N days.")


@users.command("add")
@click.argument("name")
@ROLE
@LABEL
@EXPIRES
def users_add(name, role, label, expires_days):
    """Add user NAME with a role and print its first token (once)."""
    token = user_service.add(engine(), name, role, label=label, expires_days=expires_days)
    show_token(token, f"{name} ({role})")


@users.command("token")
@click.argument("name")
@LABEL
@EXPIRES
def users_token(name, label, expires_days):
    """Print another token for user NAME (once)."""
    token = user_service.issue_token(engine(), name, label=label, expires_days=expires_days)
    show_token(token, name)


@users.command("list")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
def users_list(fmt):
    """Users, their roles and tokens (prefix, label, created, last used, expiry, revoked; never the secret)."""
    found = user_service.list_users(engine())
    if fmt == "json":
        click.echo(json.dumps(found, ensure_ascii=False, indent=2, default=lambda v: dates.iso(v, settings().timezone)))
        return

    tz = settings().timezone

    def when(v):  # to the minute, with its offset: 2026-12-01T12:08+08:00
        text = dates.iso(v, tz)
        return f"{text[:16]}{text[-6:]}" if text else "-"

    for u in found:
        state = f"disabled {when(u['disabled_at'])}" if u["disabled_at"] else "active"
        click.echo(f"{u['name']}\t{u['role']}\t{state}\tcreated {when(u['created_at'])}")
        for t in u["tokens"]:
            status = f"revoked {when(t['revoked_at'])}" if t["revoked_at"] else "expired" if t["expired"] else "live"
            click.echo(
                f"  {t['prefix']}…\t{status}\tcreated {when(t['created_at'])}\tlast used "
                f"{when(t['last_used_at'])}\texpires {when(t['expires_at'])}\t{t['label'] or ''}".rstrip()
            )
    click.echo(f"{len(found)} user{'' if len(found) == 1 else 's'}", err=True)


@users.command("revoke")
@click.argument("prefix")
def users_revoke(prefix):
    """Revoke the token starting with PREFIX (as `users list` shows it)."""
    done = user_service.revoke(engine(), prefix.rstrip("…"))
    click.echo(f"revoked token {done['prefix']} of {done['user']}", err=True)


@users.command("disable")
@click.argument("name")
def users_disable(name):
    """Disable user NAME: every token of it is refused from now on."""
    user_service.disable(engine(), name)
    click.echo(f"disabled {name}: its tokens are refused", err=True)


@users.command("password")
@click.argument("name")
@click.option("--remove", is_flag=True, help="Remove the password: NAME signs in with a token only.")
def users_password(name, remove):
    """Set the map sign-in password of user NAME (asked twice, never shown; kept as a scrypt hash)."""
    if remove:
        user_service.set_password(engine(), name, None)
        click.echo(f"{name} has no password now: tokens only", err=True)
        return
    user_service.get(engine(), name)  # an unknown name is refused before the password is asked for
    password = click.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True, err=True)
    user_service.set_password(engine(), name, password)
    click.echo(f"password set for {name}: sign in on the map with it", err=True)
