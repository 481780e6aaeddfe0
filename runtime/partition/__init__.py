"""The partition processor: a deterministic state machine that turns a partition's log into its store."""
