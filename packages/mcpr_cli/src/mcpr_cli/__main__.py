"""`python -m mcpr_cli` runs the `mcpr` command."""

from mcpr_cli.cli import main

main()
