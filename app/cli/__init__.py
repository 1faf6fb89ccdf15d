"""The ``flask`` commands: one module per group, each a ``@click.group`` named ``<group>_cli``.

Like the API and the dashboard, a command is a thin door: it reads its options, calls the
lifecycle core (or hands the work to RQ with ``--enqueue``) and says what happened.
"""

from __future__ import annotations

from flask import Flask


def register_commands(app: Flask) -> None:
    """Add every command group to ``flask``."""
    from app.cli.demo import demo_cli
    from app.cli.monitoring import alerts_cli, storage_cli
    from app.cli.notices import notices_cli
    from app.cli.policies import policies_cli
    from app.cli.runs import runs_cli
    from app.cli.users import users_cli

    for group in (users_cli, runs_cli, demo_cli, storage_cli, alerts_cli, policies_cli, notices_cli):
        app.cli.add_command(group)
