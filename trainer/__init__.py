"""trainer: see its issue; not built yet."""
