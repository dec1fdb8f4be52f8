"""A grid's assessment figures read from the index alone.

``GET /api/v1/events/stats?grid=<code>`` aggregates every case of a subtree (a street of a year of
Zhengzhou: up to 31,000 cases).  Through the indexes on ``(chain column, state, due_at)`` each case
cost a heap page (28,000 pages for the largest street, 69 ms warm); the same indexes now carry the
figures' columns and those of the groupings a dispatcher reads (the level below, the departments)
(INCLUDE), so PostgreSQL answers with an index-only scan (21 ms).  Same keys, so every plan that
used them still can; the micro-grid's index, ``(micro_code)`` alone until now, gets the same shape.

And the two references of a case to another (``parent_id`` of a split case's children,
``merged_into`` of a merged duplicate) get indexes of the few rows that have them: without, deleting
a case made PostgreSQL look for cases referring to it by reading the whole table (400,000 deleted
cases of the bench city had not finished in 11 minutes).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

#: Scope column: the grouping columns its index carries besides itself (figures per the level below,
#: and per department), as store/case_views.SCOPES names them.  special_code has no figures index.
GROUPS = {
    "micro_code": ("department_code",),
    "courtyard_code": ("micro_code", "department_code"),
    "community_code": ("courtyard_code", "department_code"),
    "street_code": ("community_code", "department_code"),
    "district_code": ("street_code", "department_code"),
    "department_code": (),
}
#: Every column store/case_views._STATS reads besides the scope and the group.
FIGURES = ("matter_code", "status", "received_at", "closed_at", "escalations", "reopened", "rating")

#: A case's references to another case.
REFERENCES = ("parent_id", "merged_into")


def upgrade() -> None:
    for column, groups in GROUPS.items():
        op.execute(f"DROP INDEX IF EXISTS ix_report_{column}")
        carried = ", ".join(groups + FIGURES)
        op.execute(f"CREATE INDEX ix_report_{column} ON report ({column}, state, due_at) INCLUDE ({carried})")
    for column in REFERENCES:
        op.execute(f"CREATE INDEX ix_report_{column} ON report ({column}) WHERE {column} IS NOT NULL")


def downgrade() -> None:
    for column in REFERENCES:
        op.execute(f"DROP INDEX IF EXISTS ix_report_{column}")
    for column in GROUPS:
        op.execute(f"DROP INDEX IF EXISTS ix_report_{column}")
        key = f"{column}, state, due_at" if column != "micro_code" else column
        op.execute(f"CREATE INDEX ix_report_{column} ON report ({key})")
