"""The archive page's totals read from an index that carries them.

The dashboard's ``/archive`` sums a range of archived runs (runs, bytes before and after, per
codec). On PostgreSQL this index carries those columns (``INCLUDE``), so the sums never visit
the table: 157 ms instead of 635 ms for 640 k archived runs (bench/RESULTS.md).

Revision ID: 0007_archived_totals_index
Revises: 0006_list_filter_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = '0007_archived_totals_index'
down_revision = '0006_list_filter_indexes'
branch_labels = None
depends_on = None

ARCHIVED = 'archived_at IS NOT NULL AND deleted_at IS NULL'


def upgrade():
    with op.batch_alter_table('jobs', schema=None, recreate='never') as batch_op:
        batch_op.create_index(
            'ix_jobs_archived_totals',
            ['created_at'],
            unique=False,
            postgresql_include=['compression', 'size_bytes', 'archive_size_bytes', 'created_by'],
            postgresql_where=sa.text(ARCHIVED),
            sqlite_where=sa.text(ARCHIVED),
        )


def downgrade():
    with op.batch_alter_table('jobs', schema=None, recreate='never') as batch_op:
        batch_op.drop_index('ix_jobs_archived_totals')
