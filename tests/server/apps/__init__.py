"""Apps the process tests serve (imported by the launched server, never by pytest)."""
