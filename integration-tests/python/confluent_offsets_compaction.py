"""confluent-kafka: committed offsets survive compaction of __consumer_offsets.

usage:
  confluent_offsets_compaction.py commit BOOTSTRAP TOPIC GROUP PARTITIONS COMMITS
  confluent_offsets_compaction.py fetch BOOTSTRAP TOPIC GROUP PARTITIONS

commit: creates TOPIC with PARTITIONS partitions, then commits COMMITS times (synchronously)
offsets 1..COMMITS for every partition in group GROUP (assign, no subscription), and prints
the last committed offsets read back.

fetch: prints the group's committed offsets of TOPIC's partitions (-1001 = none).
"""

import sys

from confluent_kafka import TopicPartition

import confluent_common as cc
from common import DEADLINE_S, check, emit, fail


def committed(consumer, topic, partitions):
    found = consumer.committed(
        [TopicPartition(topic, p) for p in range(partitions)], timeout=DEADLINE_S
    )
    for tp in found:
        check(tp.error is None, f"committed({tp.partition}): {tp.error}")
    return {str(tp.partition): tp.offset for tp in found}


def commit(argv):
    bootstrap, topic, group = argv[0], argv[1], argv[2]
    partitions, commits = int(argv[3]), int(argv[4])
    admin_client = cc.admin(bootstrap)
    cc.create_topic(bootstrap, admin_client, topic, partitions)
    consumer = cc.consumer(bootstrap, group)
    for offset in range(1, commits + 1):
        offsets = [TopicPartition(topic, p, offset) for p in range(partitions)]
        consumer.commit(offsets=offsets, asynchronous=False)
    emit({"committed": committed(consumer, topic, partitions)})
    consumer.close()


def fetch(argv):
    bootstrap, topic, group, partitions = argv[0], argv[1], argv[2], int(argv[3])
    consumer = cc.consumer(bootstrap, group)
    emit({"committed": committed(consumer, topic, partitions)})
    consumer.close()


def main():
    mode, argv = sys.argv[1], sys.argv[2:]
    if mode == "commit":
        commit(argv)
    elif mode == "fetch":
        fetch(argv)
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
