"""Interop with the site's real auth libraries: cookies minted by next-auth (v4) and @auth/core
(Auth.js v5) from npm, pinned in ``nextauth/package-lock.json`` (``make test`` runs ``npm ci``)."""
