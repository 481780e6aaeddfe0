"""endure.runtime.partition."""
