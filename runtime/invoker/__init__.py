"""endure.runtime.invoker."""
