"""VAPID keys (RFC 8292): load, derive the public key, generate a pair.

``python -m services.notifier.vapid generate`` prints a new pair as environment lines;
``python -m services.notifier.vapid public-key`` prints the public key of ``VAPID_PRIVATE_KEY``
(what ``hello.push.vapid_public_key`` carries and browsers pass to ``pushManager.subscribe``).

Keys are handled by ``py-vapid`` (Mozilla's VAPID library) over ``cryptography``: the private key
is a P-256 scalar, given as base64url of its 32 raw bytes (the web-push ecosystem's format) or
as a PEM; the public key is the base64url uncompressed point (65 bytes).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from services.notifier.domain.push import b64url_decode, b64url_encode


@dataclass(frozen=True, slots=True)
class VapidKey:
    """A loaded VAPID key pair.

    Attributes:
        vapid: py-vapid's signer holding the private key.
        public_key: base64url of the uncompressed public point (65 bytes).
    """

    vapid: Any
    public_key: str


def load_private_key(value: str) -> VapidKey:
    """Load ``VAPID_PRIVATE_KEY``: base64url raw scalar, or PEM (``\\n`` escapes allowed, as
    env files often hold them).

    Raises:
        ValueError: not a P-256 private key in either format (the message names no key bytes).
    """
    text = value.strip().replace("\\n", "\n")
    try:
        if "-----BEGIN" in text:
            # cryptography reads PKCS#8 and SEC1 PEMs, with or without an EC PARAMETERS block.
            private_key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            scalar = b64url_decode(text)
            if len(scalar) != 32:
                raise ValueError("raw key must be 32 bytes")
            private_key = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # The message names the kind of failure only, never the key.
        kind = type(exc).__name__
        raise ValueError(f"VAPID_PRIVATE_KEY is not a readable key ({kind})") from None
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
        private_key.curve, ec.SECP256R1
    ):
        raise ValueError("VAPID_PRIVATE_KEY must be a P-256 (prime256v1) key")
    return VapidKey(vapid=Vapid02(private_key), public_key=public_key_of(private_key))


def public_key_of(private_key: ec.EllipticCurvePrivateKey) -> str:
    """base64url of the uncompressed public point: the applicationServerKey browsers take."""
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url_encode(raw)


def generate() -> tuple[str, str]:
    """A new pair: (private key as base64url raw scalar, public key as base64url point)."""
    vapid = Vapid02()
    vapid.generate_keys()
    private_key: ec.EllipticCurvePrivateKey = vapid.private_key
    scalar = private_key.private_numbers().private_value.to_bytes(32, "big")
    return b64url_encode(scalar), public_key_of(private_key)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``generate`` and ``public-key`` commands (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m services.notifier.vapid")
    parser.add_argument("command", choices=["generate", "public-key"])
    args = parser.parse_args(argv)
    if args.command == "generate":
        private, public = generate()
        # VAPID_PUBLIC_KEY is informational for the services (they derive it); the gateway may
        # be given it without the private key.
        sys.stdout.write(f"VAPID_PRIVATE_KEY={private}\nVAPID_PUBLIC_KEY={public}\n")
        return 0
    value = os.environ.get("VAPID_PRIVATE_KEY")
    if not value:
        sys.stderr.write("VAPID_PRIVATE_KEY is not set\n")
        return 2
    try:
        key = load_private_key(value)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(f"{key.public_key}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
