"""The services of the real-time messaging backend; see each package's docstring."""
