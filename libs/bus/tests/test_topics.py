from __future__ import annotations

from bus.topics import Topic, topic_specs


def test_every_topic_is_specified_once_with_one_partition_count_and_the_given_replication() -> None:
    specs = topic_specs(12, "e2e.", replication_factor=3, min_insync_replicas=2)
    assert [s.name for s in specs] == [f"e2e.{t.value}" for t in Topic]
    for spec in specs:
        assert (spec.partitions, spec.replication_factor) == (12, 3)
        assert spec.config == {"min.insync.replicas": "2"}


def test_a_single_broker_gets_one_replica_and_one_in_sync() -> None:
    for spec in topic_specs(6):
        assert spec.replication_factor == 1
        assert spec.config == {"min.insync.replicas": "1"}
