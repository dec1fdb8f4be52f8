"""The current grid versions' ids and start times in an index of their own.

Every process that looks points up first asks which grid versions are current
(store/grids.version_digest: the key of its persisted index).  Read from the table, that is a scan
of every row and its geometry (246 MB on the bench city: ~65 ms); from this partial index, which
holds the current rows' id and valid_from and nothing else, it is an index-only scan (~13 ms).
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"  # 0019_closed_case_figures
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_grid_current_version ON grid (id) INCLUDE (valid_from) WHERE valid_to IS NULL")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_grid_current_version")
