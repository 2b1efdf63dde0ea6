"""``python -m services.presence [serve|migrate]``."""

from __future__ import annotations

from services.presence.app import SERVICE

if __name__ == "__main__":
    SERVICE.main()
