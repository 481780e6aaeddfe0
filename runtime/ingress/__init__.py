"""endure.runtime.ingress."""
