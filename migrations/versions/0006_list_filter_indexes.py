"""indexes for the lists at a million runs: the active list's filters, the deleted tier, text search

Revision ID: 0006_list_filter_indexes
Revises: 0005_session_epoch
Create Date: 2026-12-05 05:20:00

At a million runs (180,000 of them active) the active list's filters read the table:
counting the 9,000 failed runs took 210 ms, a search matching a handful of runs 300-700 ms
(every active run's name, scraper, folder and id compared). B-tree indexes of the active tier by
(status | scraper, created_at, id) keep a filtered page and its capped count in the index; on
PostgreSQL, trigram indexes (pg_trgm, GIN) of the four searched columns find the runs containing
the text (~5 ms). SQLite has no trigram index: its searches stay a scan. The deleted tier (the
dashboard's trash) gets the (created_at, id) and (created_by, created_at) indexes the other tiers
have: a page of it sorted all 180,000 deleted runs (380 ms).

The trigram indexes, named ``*_trgm``, live in this migration only (the models cannot declare an
index for one database alone; migrations/env.py leaves them out of the models' comparison).
"""
import logging

import sqlalchemy as sa
from alembic import op

log = logging.getLogger('alembic.runtime.migration')

revision = '0006_list_filter_indexes'
down_revision = '0005_session_epoch'
branch_labels = None
depends_on = None

ACTIVE = 'archived_at IS NULL AND deleted_at IS NULL'
DELETED = 'deleted_at IS NOT NULL'
# The columns matching_text (app.lifecycle.runs) compares, as the queries write them.
SEARCHED = {'name': 'name', 'scraper': 'scraper', 'folder_name': 'folder_name', 'id': '(CAST(id AS VARCHAR))'}


def upgrade():
    # Plain CREATE INDEX, no table rebuild on SQLite (a rebuild would drop and re-create jobs).
    with op.batch_alter_table('jobs', schema=None, recreate='never') as batch_op:
        for column in ('status', 'scraper'):
            batch_op.create_index(
                f'ix_jobs_active_{column}_created_at_id',
                [column, 'created_at', 'id'],
                unique=False,
                postgresql_where=sa.text(ACTIVE),
                sqlite_where=sa.text(ACTIVE),
            )
        for columns in (['created_at', 'id'], ['created_by', 'created_at']):
            batch_op.create_index(
                f"ix_jobs_deleted_{'_'.join(columns)}",
                columns,
                unique=False,
                postgresql_where=sa.text(DELETED),
                sqlite_where=sa.text(DELETED),
            )
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it. A role
    # that may not (a managed database, least privilege) keeps every list working, searches scan:
    # the indexes only speed them up, so their absence is said, not fatal. Its operator class is
    # named with the schema it lives in, which need not be on the search path.
    try:
        with bind.begin_nested():
            bind.execute(sa.text('CREATE EXTENSION IF NOT EXISTS pg_trgm'))
    except sa.exc.DBAPIError as error:
        log.warning('no pg_trgm (%s): text searches of the active list will scan', str(error).splitlines()[0])
        return
    home = bind.execute(
        sa.text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'")
    ).scalar_one()
    for name, expression in SEARCHED.items():
        op.execute(
            f'CREATE INDEX ix_jobs_active_{name}_trgm ON jobs USING gin ({expression} {home}.gin_trgm_ops) '
            f'WHERE {ACTIVE}'
        )


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for name in SEARCHED:
            op.execute(f'DROP INDEX IF EXISTS ix_jobs_active_{name}_trgm')
        # The extension stays: other tables or databases' users may rely on it.
    with op.batch_alter_table('jobs', schema=None, recreate='never') as batch_op:
        batch_op.drop_index('ix_jobs_deleted_created_by_created_at')
        batch_op.drop_index('ix_jobs_deleted_created_at_id')
        for column in ('scraper', 'status'):
            batch_op.drop_index(f'ix_jobs_active_{column}_created_at_id')
