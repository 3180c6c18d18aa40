"""``python -m molli_utils.experiments``: see :mod:`molli_utils.experiments` (the command line: :mod:`.cli`)."""

from .cli import main

main()
