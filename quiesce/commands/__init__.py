"""Subcommands of ``quiesce``; each module has ``register(subparsers)``."""
