"""``flask users …``: manage who can log in and call the API."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import func, select

from app.auth.users import UserError, create_user, rotate_token, set_email, set_password
from app.extensions import db
from app.models import User


@click.group("users")
def users_cli() -> None:
    """Manage users and their API tokens."""


@users_cli.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Give the user the admin role.")
@click.option("--password", default=None, help="Password (a random one is generated and printed if omitted).")
@click.option("--email", default=None, help="Where the user's deletion notices are mailed.")
def create_command(username: str, admin: bool, password: str | None, email: str | None) -> None:
    """Create a user and print its API token as the last line."""
    generated = password is None
    try:
        user, password, token = create_user(db.session, username, password, admin=admin, email=email)
    except UserError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Created {user.role} {user.username!r}.")
    if generated:
        click.echo(f"Password: {password}")
    click.echo(token)


@users_cli.command("list")
def list_command() -> None:
    """List users and their roles."""
    for user in db.session.scalars(select(User).order_by(User.username)):
        click.echo(f"{user.username}\t{user.role}\t{user.created_at:%Y-%m-%d}")


@users_cli.command("rotate-token")
@click.argument("username")
def rotate_token_command(username: str) -> None:
    """Replace a user's API token and print the new one."""
    user = db.session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    click.echo(rotate_token(db.session, user))


@users_cli.command("set-password")
@click.argument("username")
@click.option(
    "--password",
    prompt="New password",
    hide_input=True,
    confirmation_prompt=True,
    help="The new password (asked twice, unechoed, if omitted).",
)
def set_password_command(username: str, password: str) -> None:
    """Give a user a new password; every session the user had open ends."""
    user = db.session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    try:
        set_password(db.session, user, password)
    except UserError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Changed the password of {user.username!r}; their open sessions have ended.")


@users_cli.command("set-email")
@click.argument("username")
@click.argument("email")
def set_email_command(username: str, email: str) -> None:
    """Set where a user's deletion notices are mailed ("" for nowhere)."""
    user = db.session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    try:
        set_email(db.session, user, email)
    except UserError as error:
        raise click.ClickException(str(error)) from None
    if user.email:
        click.echo(f"Deletion notices for {user.username!r} go to {user.email}.")
    else:
        click.echo(f"No deletion notices are mailed to {user.username!r}.")


@users_cli.command("ensure-admin")
def ensure_admin_command() -> None:
    """Create an ``admin`` user on first start and say how to log in; do nothing later."""
    if db.session.scalar(select(func.count()).select_from(User)):
        return
    user, password, token = create_user(db.session, "admin", None, admin=True)
    note = Path(current_app.instance_path) / "first-admin.txt"
    fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(
            f"username: {user.username}\npassword: {password}\napi token: {token}\n"
            f"change the password with `flask users set-password {user.username}` or on the Change password page\n"
        )
    click.echo(
        "\n  First start: created the admin user.\n"
        f"    username:  {user.username}\n    password:  {password}\n    API token: {token}\n"
        f"  (also saved in {note}; change the password with `flask users set-password {user.username}`\n"
        "   or on the dashboard's Change password page)\n"
    )
