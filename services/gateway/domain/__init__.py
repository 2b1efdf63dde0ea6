"""The gateway's protocol core: decisions without I/O (websockets' ``protocol.py`` habit).

Module map:
    auth       upgrade authentication: origin allow-list, bearer token from header or
               subprotocol, else the session cookie; HS256 JWT verified against an injected clock
    session_cookie  NextAuth v4 / Auth.js v5 session cookies: parsing, chunk joining, name
               selection, key derivation (HKDF) and JWE decryption (joserfc)
    frames     client text frame -> typed frame, or FrameError with the protocol code
    commands   what a frame (or a connection event) becomes for the service that applies it:
               topic, key, data
    ratelimit  per-connection token bucket with an abuse verdict (close 4008)
    limits     admission: handshakes per client address, connection cap under the fd limit
    registry   sessions by user and connection; delivery partitions needed (murmur2)
    errors     GatewayError > AuthError (HTTP status) | FrameError (protocol code)
"""
