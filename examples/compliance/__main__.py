"""Run the compliance demo: ``python -m examples.compliance``."""

import sys

from examples.compliance.demo import main

sys.exit(main())
