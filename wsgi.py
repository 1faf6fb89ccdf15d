"""The WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi``."""

import sys

from app import ConfigError, create_app

try:
    app = create_app(check_database=True)
except ConfigError as error:
    sys.exit(f"Configuration error: {error}")
