"""integrity: verification columns, interrupted attempts, escaped member names

Revision ID: 0004_integrity
Revises: 0003_tier_indexes
Create Date: 2026-11-29 16:30:00

Member paths are stored in their escaped form (app.lifecycle.naming.escape_name): a backslash
is written ``\\\\`` and control characters ``\\n``, ``\\t``, ``\\xHH``. Paths stored before held them
raw, so the rows holding a backslash or a control character are rewritten with that very rule
(and back with ``native_name`` on a downgrade).
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_integrity'
down_revision = '0003_tier_indexes'
branch_labels = None
depends_on = None

OLD_ACTIONS = "'archive', 'restore', 'expire_restore', 'delete', 'purge', 'undelete', 'extend', 'migrate'"
OLD_OUTCOMES = "'succeeded', 'failed', 'skipped'"
# Rows that can need a change: a backslash or a control character in the path or the link target.
_SUSPECTS = ["\\"] + [chr(code) for code in (*range(1, 32), 127)]


def _rewrite_member_names(convert) -> None:
    """Rewrite the paths and link targets that hold a backslash or a control character with ``convert``."""
    members = sa.table(
        "archive_members", sa.column("id", sa.BigInteger), sa.column("path", sa.Text), sa.column("link_target", sa.Text)
    )
    connection = op.get_bind()
    suspect = sa.or_(
        *(
            column.like("%" + char.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%", escape="!")
            for char in _SUSPECTS
            for column in (members.c.path, members.c.link_target)
        )
    )
    rows = connection.execute(sa.select(members.c.id, members.c.path, members.c.link_target).where(suspect)).all()
    for row_id, path, link_target in rows:
        connection.execute(
            members.update()
            .where(members.c.id == row_id)
            .values(path=convert(path), link_target=convert(link_target) if link_target is not None else None)
        )


def upgrade():
    with op.batch_alter_table('jobs', schema=None, recreate='never') as batch_op:  # see downgrade()
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
    from app.lifecycle.naming import escape_name

    _rewrite_member_names(escape_name)


def downgrade():
    from app.lifecycle.naming import native_name

    def raw(escaped: str) -> str:
        name = native_name(escaped)
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 never were storable raw: keep the escape
            return escaped
        return name

    _rewrite_member_names(raw)
    op.execute("UPDATE lifecycle_events SET outcome = 'failed', error = 'interrupted' WHERE outcome = 'started'")
    op.execute("DELETE FROM lifecycle_events WHERE action = 'verify'")
    with op.batch_alter_table('lifecycle_events', schema=None) as batch_op:
        batch_op.drop_index('ix_lifecycle_events_unfinished', postgresql_where=sa.text("outcome = 'started'"), sqlite_where=sa.text("outcome = 'started'"))
        batch_op.drop_constraint(batch_op.f('ck_lifecycle_events_action'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_lifecycle_events_outcome'), type_='check')
        batch_op.create_check_constraint('action', f"action IN ({OLD_ACTIONS})")
        batch_op.create_check_constraint('outcome', f"outcome IN ({OLD_OUTCOMES})")

    # Never a copy-and-move of jobs on SQLite: its DROP TABLE would cascade to archive_members
    # (foreign keys are on) and take every manifest with it. SQLite 3.35+ drops columns in place.
    op.drop_index(op.f('ix_jobs_last_verified_at'), table_name='jobs')
    with op.batch_alter_table('jobs', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('verify_outcome')
        batch_op.drop_column('last_verified_at')
