"""Demo scenarios for ``imslab demo [NAME]``.

A demo module exposes ``NAME: str``, ``HELP: str``, ``PRIORITY: int`` (the highest-priority demo
is the default when no name is given), optionally ``add_arguments(parser)``, and
``async def run(args) -> bool`` which prints its progress and summary and returns success.
"""
