"""Servers acknowledge each grid epoch they hear of (``epoch_listener``), and a write waits for them.

A server learns of an edit from the epoch's NOTIFY on its listening connection, without a query per
lookup.  PostgreSQL signals the listening backends at commit, but each must then be scheduled to
send the notice on: on a loaded machine that came later than the writer's answer and the next
request to another server (a fresh-clone CI run: a lookup on server B right after an edit through
server A answered from the old grids).  So each listening connection acknowledges
the epochs it has heard here, and a write request answers once every live listener has (see
``gridmap.services.locator.await_servers``).  A row is one listening backend, named by its pid and
start time (a pid can be reused).  The waiting ignores rows of backends gone (deleted when a new
listener registers) and rows not written for a while (each listener's thread writes its row at
least every few seconds: a row left alone is a stopped process's).  Unlogged: acknowledgements are
of this moment, worth nothing after a crash, and need no write-ahead log.  The waiting reads ``pg_stat_activity``, whose
``backend_start`` PostgreSQL shows only for sessions of the reader's own role (or to members of
``pg_read_all_stats``): servers and writers connect as one role.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"  # 0020_current_versions
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE UNLOGGED TABLE epoch_listener (
        pid integer NOT NULL,
        backend_start timestamptz NOT NULL,
        epoch bigint NOT NULL,
        seen_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (pid, backend_start)
    )""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS epoch_listener")
