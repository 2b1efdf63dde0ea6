"""Pure presence logic (no I/O; ``now`` is always passed in).

Module map:
    presence           fold connection/status events into one status per user; grace and expiry
                       rules
    typing_indicators  live typing starts and their 6 s lapse (not ``typing``: that is the
                       standard library's)
"""
