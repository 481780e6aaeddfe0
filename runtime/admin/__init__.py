"""The admin API: services, invocations and their journals, operator actions, partitions."""
