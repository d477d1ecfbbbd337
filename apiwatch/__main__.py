"""``python -m apiwatch`` runs the command line."""

from apiwatch.streams.cli import main

main()
