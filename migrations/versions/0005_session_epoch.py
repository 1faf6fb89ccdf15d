"""session epoch: a logout or a password change ends the user's session cookies

Revision ID: 0005_session_epoch
Revises: 0004_integrity
Create Date: 2026-12-01 10:00:00

Sessions opened before this revision carry no epoch and end once: their users log in again.
"""
import sqlalchemy as sa
from alembic import op

revision = '0005_session_epoch'
down_revision = '0004_integrity'
branch_labels = None
depends_on = None


def upgrade():
    # Adding a column with a constant default is a plain ALTER TABLE on SQLite: no table rebuild
    # (which would drop and re-create the users table that jobs and tasks point at).
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    # SQLite 3.35+ drops a column in place; older ones would need the rebuild refused above.
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('session_epoch')
