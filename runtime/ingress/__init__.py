"""The client-facing gRPC ingress: validates requests and appends them to the partitions' logs."""
