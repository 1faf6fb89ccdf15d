"""archive indexes: where each block of a seekable archive starts

Revision ID: 0012_archive_indexes
Revises: 0011_search_every_tier
Create Date: 2026-12-05 14:10:00

gzip and zstd archives are now written as independently decompressible blocks (gzip members,
zstd frames; still one standard .tar.gz / .tar.zst). Each archive's block index — the compressed
and uncompressed offset of every block — is kept here, beside its manifest, so a member read
decompresses only the blocks that hold it. A table of its own, not a column of jobs: the lists
read every column of jobs, and an index of a 1 GB archive holds a thousand pairs. Archives written
before have no row and are read from their start as before.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0012_archive_indexes'
down_revision = '0011_search_every_tier'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'archive_indexes',
        sa.Column('job_id', sa.Uuid(), nullable=False),
        sa.Column('codec', sa.String(length=8), nullable=False),
        sa.Column('blocks', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_archive_indexes_job_id_jobs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', name=op.f('pk_archive_indexes')),
    )


def downgrade():
    op.drop_table('archive_indexes')
