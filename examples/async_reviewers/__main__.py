"""Run the async reviewers example: ``python -m examples.async_reviewers [--memory]``."""

import sys

from examples.async_reviewers.demo import main

sys.exit(main())
