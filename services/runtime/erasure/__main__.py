"""``python -m services.runtime.erasure erase-user <user id>`` (see :mod:`.command`)."""

from __future__ import annotations

import sys

from services.runtime.erasure.command import main

if __name__ == "__main__":
    sys.exit(main())
