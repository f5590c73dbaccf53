"""``python -m brainsynth`` runs the command line."""

import sys

from brainsynth.cli import main

sys.exit(main())
