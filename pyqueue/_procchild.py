"""Entry point of a process-mode child: ``python -m pyqueue._procchild RFD WFD CONFIG``."""

from __future__ import annotations

import json
import sys

from ._procpool import _child_main

if __name__ == "__main__":
    _child_main(int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]))
