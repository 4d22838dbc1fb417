"""Network-element roles for ``imslab run ROLE``.

A role module exposes ``ROLE: str`` (the name on the command line), ``HELP: str``,
``add_arguments(parser)`` and ``async def run(args) -> int``, which runs until cancelled
(Ctrl-C / SIGTERM) and returns an exit code. The same entry point is what a container runs.
"""
