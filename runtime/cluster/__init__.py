"""endure.runtime.cluster: cluster mode, where any live node may lead any partition.

The log and the metadata live on NATS JetStream (`endure.runtime.log.jetstream`). Each node holds a
lease in the metadata (`membership`); one controller, the live node with the lowest id, keeps the
partition table (`partition_table`, `controller`): partition -> leader node and epoch, changed
only by compare-and-set. Every node follows the table (`leadership`): it leads the partitions
assigned to it, with the table's epoch, and reaches the others through their leaders.
"""
