"""`python -m scientist_llm_local install`: the same as the `scientist-llm-local` command."""

import sys

from scientist_llm_local.cli import main

sys.exit(main())
