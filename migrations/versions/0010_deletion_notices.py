"""Notices before deletion (SPEC §9): users' email addresses and the notices sent, with their keep links.

``deletion_notices`` holds one row per run listed in a digest sent to its owner by one channel:
what keeps a run out of a second digest the same day, what the run page shows, and whether its
signed "keep 30 more days" link was used.

Revision ID: 0010_deletion_notices
Revises: 0009_restored_tier
"""

import sqlalchemy as sa
from alembic import op

revision = '0010_deletion_notices'
down_revision = '0009_restored_tier'
branch_labels = None
depends_on = None


def _key():
    return sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    # A nullable column is a plain ALTER TABLE on SQLite: no rebuild of the table jobs point at.
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=254), nullable=True))
    op.create_table(
        'deletion_notices',
        sa.Column('id', _key(), autoincrement=True, nullable=False),
        sa.Column('job_id', sa.Uuid(), nullable=False),
        sa.Column('owner_id', sa.Uuid(), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('recipient', sa.String(length=254), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('deletes_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('token_id', sa.String(length=32), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("channel IN ('email', 'webhook')", name=op.f('ck_deletion_notices_channel')),
        sa.ForeignKeyConstraint(
            ['owner_id'], ['users.id'], name=op.f('fk_deletion_notices_owner_id_users'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_deletion_notices')),
        sa.UniqueConstraint('token_id', name=op.f('uq_deletion_notices_token_id')),
    )
    with op.batch_alter_table('deletion_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deletion_notices_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deletion_notices_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deletion_notices_sent_at'), ['sent_at'], unique=False)


def downgrade():
    op.drop_table('deletion_notices')
    # SQLite 3.35+ drops a column in place; older ones would need the rebuild refused above.
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('email')
