"""Small file-system facts about run folders, never following symlinks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from app.lifecycle.store import overwrite


def folder_size(path: Path) -> int:
    """Return the bytes held by regular files under ``path``, links not followed."""
    total = 0
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def remove_folder(folder: Path, *, secure: bool) -> None:
    """Remove a run folder; with SECURE_DELETE overwrite every file first (links are not followed)."""
    if secure:
        for parent, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(parent) / name
                if path.is_file() and not path.is_symlink():
                    overwrite(path)
    shutil.rmtree(folder)
