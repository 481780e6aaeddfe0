"""endure.bench."""
