"""endure.runtime.log."""
