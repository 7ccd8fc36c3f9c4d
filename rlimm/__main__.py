import sys

from rlimm.cli import main

sys.exit(main())
