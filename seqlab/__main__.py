"""``python -m seqlab`` = the ``seqlab`` command (also under ``torchrun``)."""
import sys

from .cli import main

sys.exit(main())
