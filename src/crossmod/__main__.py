"""`python -m crossmod`."""

from crossmod.cli import main

main()
