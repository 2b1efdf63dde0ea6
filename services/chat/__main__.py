"""``python -m services.chat [serve|migrate]``."""

from __future__ import annotations

from services.chat.app import SERVICE

if __name__ == "__main__":
    SERVICE.main()
