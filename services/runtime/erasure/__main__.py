"""``python -m services.runtime.erasure erase-user <user id>`` (see :mod:`.command`)."""

import sys

from services.runtime.erasure.command import main

sys.exit(main())
