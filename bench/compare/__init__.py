"""Side-by-side benchmark of Endure, Restate, Temporal and DBOS (`python -m endure.bench compare`)."""
