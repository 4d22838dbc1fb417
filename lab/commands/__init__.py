"""Sub-commands of ``imslab``: one module each, each exposing ``register(subparsers)``.

``register`` adds a parser and sets ``func=callable(args) -> int`` as its default.
"""
