"""endure.runtime."""
