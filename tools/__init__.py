"""Developer tooling of the project (not shipped)."""
