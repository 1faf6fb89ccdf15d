"""text search in every tier: trigram indexes of the archived and deleted tiers too

Revision ID: 0011_search_every_tier
Revises: 0010_deletion_notices
Create Date: 2026-12-05 13:50:00

The runs search now counts its matches in every tier (issue 13: a pasted id or folder of an
archived run must be found from the Runs page). Migration 0006 indexed the four searched columns
(name, scraper, folder, id as text) with trigrams for the active tier only; at a million runs a
search of the archived tier (640,000 runs) read them all (3.1 s measured). The same GIN indexes,
partial on each of the other tiers' conditions (as ``app.lifecycle.runs`` writes them), let
PostgreSQL find the few matches there as in the active tier. A run id found in the text is looked
up by its key and needs none. SQLite has no trigram index: nothing to do there.

Like 0006's, they are named ``*_trgm`` (migrations/env.py leaves those out of the models'
comparison), need pg_trgm (without it: a warning, and searches scan), and are built with a plain
CREATE INDEX (writes to jobs wait while it builds: seconds at a million runs).
"""
import logging

import sqlalchemy as sa
from alembic import op

log = logging.getLogger('alembic.runtime.migration')

revision = '0011_search_every_tier'
down_revision = '0010_deletion_notices'
branch_labels = None
depends_on = None

TIERS = {
    'archived': 'archived_at IS NOT NULL AND deleted_at IS NULL',
    'deleted': 'deleted_at IS NOT NULL',
}
# The columns matching_text (app.lifecycle.runs) compares, as the queries write them (as 0006).
SEARCHED = {'name': 'name', 'scraper': 'scraper', 'folder_name': 'folder_name', 'id': '(CAST(id AS VARCHAR))'}


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    try:
        with bind.begin_nested():
            bind.execute(sa.text('CREATE EXTENSION IF NOT EXISTS pg_trgm'))
    except sa.exc.DBAPIError as error:
        log.warning('no pg_trgm (%s): text searches of the archived and deleted runs will scan', str(error).splitlines()[0])
        return
    home = bind.execute(
        sa.text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'")
    ).scalar_one()
    for tier, condition in TIERS.items():
        for name, expression in SEARCHED.items():
            op.execute(
                f'CREATE INDEX ix_jobs_{tier}_{name}_trgm ON jobs USING gin ({expression} {home}.gin_trgm_ops) '
                f'WHERE {condition}'
            )


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for tier in TIERS:
            for name in SEARCHED:
                op.execute(f'DROP INDEX IF EXISTS ix_jobs_{tier}_{name}_trgm')
