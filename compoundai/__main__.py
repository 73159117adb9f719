"""`python -m compoundai` is the `compoundai` command."""

from compoundai.cli import main

main()
