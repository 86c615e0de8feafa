"""Subcommands of ``maia`` that live in their own module; each has ``register(subparsers)``."""
