"""`python -m mailgate.ops.cli ...` is `mailgate ...` (the test harness and `mailgate up` start stages this way)."""
import sys

from mailgate.ops.cli.main import main

sys.exit(main())
