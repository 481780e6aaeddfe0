"""endure.proto."""
