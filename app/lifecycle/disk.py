"""Small file-system facts about run folders, never following symlinks."""

from __future__ import annotations

import os
from pathlib import Path


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
