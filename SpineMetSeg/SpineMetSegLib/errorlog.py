"""Keep the full traceback of an unexpected error in a log file, so the user sees one clear line instead.

Usage::

    from SpineMetSegLib.errorlog import log_traceback
    try:
        ...
    except Exception:
        path = log_traceback()   # $SPINEMETSEG_HOME/logs/error-<time>-<pid>.log (or the temporary folder)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

LOG_FOLDER = "logs"


def log_traceback(command: Optional[str] = None) -> Optional[Path]:
    """Write the exception being handled, with the command line, to a new log file; return its path.

    None when no folder could be written (the caller then says so instead of naming a file).
    """
    from .models.cache import cache_dir

    text = (
        f"spinemetseg error log {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        f"command: {command if command is not None else ' '.join(sys.argv)}\n"
        f"python: {sys.version.split()[0]} on {sys.platform}\n\n" + traceback.format_exc()
    )
    name = f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in (cache_dir() / LOG_FOLDER, Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return None
