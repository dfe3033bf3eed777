"""``python -m medledger``: the same as the ``medledger`` command."""

from medledger.cli.main import main

main()
