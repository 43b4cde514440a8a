"""Sub-command modules of the ``pcmsim`` command line; each exposes ``register(subparsers)``."""
