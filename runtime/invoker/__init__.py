"""The invoker: runs invocations on worker processes over their gRPC streams."""
