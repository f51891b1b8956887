"""`python -m axr ...` runs the `axr` command."""

from axr.cli import main

main()
