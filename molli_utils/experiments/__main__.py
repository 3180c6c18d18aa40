"""``python -m molli_utils.experiments``: see :mod:`molli_utils.experiments`."""

from . import main

main()
