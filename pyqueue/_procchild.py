"""Entry point of a process-mode child: ``python -m pyqueue._procchild RFD WFD``
(its settings arrive as the first frame on RFD)."""

from __future__ import annotations

import sys

from ._procpool import _child_main

if __name__ == "__main__":
    _child_main(int(sys.argv[1]), int(sys.argv[2]))
