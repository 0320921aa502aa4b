"""``python -m fgr_retriever.cli`` runs the command line (the same as ``fgr-retriever``)."""

import sys

from .app import main

sys.exit(main())
