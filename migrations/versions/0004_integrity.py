"""integrity: verification columns, interrupted attempts, escaped member names

Revision ID: 0004_integrity
Revises: 0003_tier_indexes
Create Date: 2026-11-29 16:30:00

Member paths are stored in their escaped form (app.lifecycle.naming.escape_name): a backslash
is written ``\\\\`` and control characters ``\\n``, ``\\t``, ``\\xHH``. Paths stored before held them
raw, so those rows are rewritten here (backslashes first, so no escape is doubled).
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_integrity'
down_revision = '0003_tier_indexes'
branch_labels = None
depends_on = None

OLD_ACTIONS = "'archive', 'restore', 'expire_restore', 'delete', 'purge', 'undelete', 'extend', 'migrate'"
OLD_OUTCOMES = "'succeeded', 'failed', 'skipped'"
_ESCAPES = [("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")]


def _escape_member_names(forward: bool) -> None:
    members = sa.table("archive_members", sa.column("path", sa.Text), sa.column("link_target", sa.Text))
    pairs = _ESCAPES if forward else [(b, a) for a, b in reversed(_ESCAPES)]
    for raw, escaped in pairs:
        for column in (members.c.path, members.c.link_target):
            # LIKE with "!" as its escape: the backslash is a plain character on both databases.
            pattern = "%" + raw.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
            op.execute(
                members.update()
                .where(column.like(pattern, escape="!"))
                .values({column.name: sa.func.replace(column, raw, escaped)})
            )


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_verified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('verify_outcome', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_last_verified_at'), ['last_verified_at'], unique=False)

    with op.batch_alter_table('lifecycle_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_lifecycle_events_action'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_lifecycle_events_outcome'), type_='check')
        batch_op.create_check_constraint('action', f"action IN ({OLD_ACTIONS}, 'verify')")
        batch_op.create_check_constraint('outcome', f"outcome IN ('started', {OLD_OUTCOMES})")
        batch_op.create_index(
            'ix_lifecycle_events_unfinished', ['job_id'], unique=False,
            postgresql_where=sa.text("outcome = 'started'"), sqlite_where=sa.text("outcome = 'started'"),
        )
    _escape_member_names(forward=True)


def downgrade():
    _escape_member_names(forward=False)
    op.execute("UPDATE lifecycle_events SET outcome = 'failed', error = 'interrupted' WHERE outcome = 'started'")
    op.execute("DELETE FROM lifecycle_events WHERE action = 'verify'")
    with op.batch_alter_table('lifecycle_events', schema=None) as batch_op:
        batch_op.drop_index('ix_lifecycle_events_unfinished', postgresql_where=sa.text("outcome = 'started'"), sqlite_where=sa.text("outcome = 'started'"))
        batch_op.drop_constraint(batch_op.f('ck_lifecycle_events_action'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_lifecycle_events_outcome'), type_='check')
        batch_op.create_check_constraint('action', f"action IN ({OLD_ACTIONS})")
        batch_op.create_check_constraint('outcome', f"outcome IN ({OLD_OUTCOMES})")

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_last_verified_at'))
        batch_op.drop_column('verify_outcome')
        batch_op.drop_column('last_verified_at')
