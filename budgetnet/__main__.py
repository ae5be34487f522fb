"""``python -m budgetnet`` is the ``budgetnet`` command."""

from budgetnet.cli import main

raise SystemExit(main())
