"""Retention policies (SPEC §9): per-scraper ages, keep_last and legal holds, with their change history.

``run_accesses`` counts, per run and day, that a person used it (for ``keep_after_access_days``).
``policy_changes`` records every add, change and removal with its actor and reason (the policy
before and after). The partial index on jobs answers keep_last's "is there an n-th newer
successful run of this scraper?" from the index alone.

Revision ID: 0008_retention_policies
Revises: 0007_archived_totals_index
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008_retention_policies'
down_revision = '0007_archived_totals_index'
branch_labels = None
depends_on = None

KEEP_LAST_RUNS = "status = 'completed' AND deleted_at IS NULL"


def _json():
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _key():
    return sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'retention_policies',
        sa.Column('id', _key(), autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('scraper_pattern', sa.String(length=255), nullable=False),
        sa.Column('statuses', _json(), nullable=False),
        sa.Column('archive_after_days', sa.Integer(), nullable=False),
        sa.Column('delete_after_days', sa.Integer(), nullable=True),
        sa.Column('keep_last', sa.Integer(), nullable=False),
        sa.Column('keep_after_access_days', sa.Integer(), nullable=True),
        sa.Column('legal_hold', sa.Boolean(), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.CheckConstraint('archive_after_days >= 0', name=op.f('ck_retention_policies_archive_after_days')),
        sa.CheckConstraint(
            'delete_after_days IS NULL OR delete_after_days > archive_after_days',
            name=op.f('ck_retention_policies_delete_after_days'),
        ),
        sa.CheckConstraint('keep_last >= 0', name=op.f('ck_retention_policies_keep_last')),
        sa.CheckConstraint(
            'keep_after_access_days IS NULL OR keep_after_access_days >= 1',
            name=op.f('ck_retention_policies_keep_after_access'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_policies')),
        sa.UniqueConstraint('name', name=op.f('uq_retention_policies_name')),
    )
    op.create_table(
        'policy_changes',
        sa.Column('id', _key(), autoincrement=True, nullable=False),
        sa.Column('policy_id', sa.BigInteger(), nullable=False),
        sa.Column('policy_name', sa.String(length=100), nullable=False),
        sa.Column('action', sa.String(length=8), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('before', _json(), nullable=True),
        sa.Column('after', _json(), nullable=True),
        sa.CheckConstraint("action IN ('add', 'set', 'remove')", name=op.f('ck_policy_changes_action')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_changes')),
    )
    with op.batch_alter_table('policy_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_policy_changes_policy_id'), ['policy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_policy_changes_changed_at'), ['changed_at'], unique=False)
    op.create_table(
        'run_accesses',
        sa.Column('job_id', sa.Uuid(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_by', sa.String(length=64), nullable=False),
        sa.Column('last_kind', sa.String(length=16), nullable=False),
        sa.Column('by_owner', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('job_id', 'day', name=op.f('pk_run_accesses')),
    )
    with op.batch_alter_table('jobs', schema=None, recreate='never') as batch_op:
        batch_op.create_index(
            'ix_jobs_kept_scraper_created_at_id',
            ['scraper', 'created_at', 'id'],
            unique=False,
            postgresql_where=sa.text(KEEP_LAST_RUNS),
            sqlite_where=sa.text(KEEP_LAST_RUNS),
        )


def downgrade():
    with op.batch_alter_table('jobs', schema=None, recreate='never') as batch_op:
        batch_op.drop_index('ix_jobs_kept_scraper_created_at_id')
    op.drop_table('run_accesses')
    op.drop_table('policy_changes')
    op.drop_table('retention_policies')
