"""member blocks: where each member of a seekable archive is, in compressed bytes

Revision ID: 0013_member_blocks
Revises: 0012_archive_indexes
Create Date: 2026-12-05 18:00:00

A member read of a seekable archive needs only the blocks holding the member: the compressed
offsets to read from and up to, and the uncompressed offset the first of them starts at. Kept on
the member's manifest row, a read needs one row, not the archive's whole block index (ten thousand
pairs for a gigabyte of 64 KiB gzip blocks). archive_indexes stays for ranged reads and rewrites.
NULL for members of archives written before (read from the index if any, else sequentially).
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_member_blocks"
down_revision = "0012_archive_indexes"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("archive_members") as batch:
        batch.add_column(sa.Column("block_start", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("block_stop", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("block_plain", sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table("archive_members") as batch:
        batch.drop_column("block_plain")
        batch.drop_column("block_stop")
        batch.drop_column("block_start")
