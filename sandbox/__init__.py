"""endure.sandbox."""
