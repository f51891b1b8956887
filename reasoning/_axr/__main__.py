"""`python -m axr ...` runs the `axr` command."""

from axr.reasoning.cli import main

main()
