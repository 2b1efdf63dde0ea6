"""Browser tests: the SDK and its demo in a real Chromium (Debian's, driven by Playwright)
against the real stack (the System of tests/integration: real Kafka, Postgres, services)."""
