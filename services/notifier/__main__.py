"""``python -m services.notifier [serve|migrate]``."""

from __future__ import annotations

from services.notifier.app import SERVICE

if __name__ == "__main__":
    SERVICE.main()
