"""`python -m exoml ...` (what torchrun calls) is the `exoml` command."""
import sys

from .cli import main

sys.exit(main())
