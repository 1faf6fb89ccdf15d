"""The restored tier in storage snapshots, and a mark on the demo's history

Revision ID: 0009_restored_tier
Revises: 0008_retention_policies

Restored working copies are a tier of their own in the storage figures: each hourly snapshot keeps
their bytes and count. ``demo`` marks the snapshots ``flask demo seed`` writes as a fresh install's
history (app.demo.seed_history). Snapshots taken before this revision had no restored tier: 0.
"""

import sqlalchemy as sa
from alembic import op

revision = '0009_restored_tier'
down_revision = '0008_retention_policies'
branch_labels = None
depends_on = None

COLUMNS = ('restored_bytes', 'restored_count', 'demo')


def upgrade():
    # Columns with a constant default: a plain ALTER TABLE on SQLite, no table rebuild.
    with op.batch_alter_table('storage_snapshots', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('restored_bytes', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('restored_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('demo', sa.Boolean(), server_default='0', nullable=False))


def downgrade():
    # SQLite 3.35+ drops a column in place.
    with op.batch_alter_table('storage_snapshots', schema=None, recreate='never') as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
