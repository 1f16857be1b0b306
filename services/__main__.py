"""`python -m services` is the `livedesk` command."""

from services.cli import main

main()
