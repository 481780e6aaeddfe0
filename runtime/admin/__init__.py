"""endure.runtime.admin."""
