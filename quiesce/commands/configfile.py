"""The operator's configuration file, read the same way by every command that takes it.

``quiesce operator --config``, ``quiesce plan --defaults`` and ``quiesce lint
--config`` name the same file; each reports a file it cannot read, or every bad
key of it, in the same words and exits 2.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quiesce.config import Config


def load(command: str, flag: str, filename: str, *, stdin: bool = False) -> Config | None:
    """The configuration in ``filename`` (``-``: standard input, where ``stdin``), or None
    after printing why not to stderr, as ``quiesce <command>: ...``."""
    from quiesce import config as configuration

    try:
        if stdin and filename == "-":
            text = sys.stdin.read()
        else:
            with open(filename, encoding="utf-8") as handle:
                text = handle.read()
        return configuration.load_config(text)
    except OSError as exc:
        print(f"quiesce {command}: cannot read {flag} {filename}: {exc}", file=sys.stderr)
    except configuration.ConfigError as exc:
        print(f"quiesce {command}: {filename}: invalid configuration:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
    return None
