"""endure.sdk."""
