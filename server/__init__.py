"""server: see its issue; not built yet."""
