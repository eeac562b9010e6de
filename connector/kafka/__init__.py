"""Kafka: the transactional producer, the topics, the replicas' group, the start-up probe.

- ``layout``: a ``Record`` to write, an event's state partition and transactional id (pure);
- ``publisher``: ``TransactionalPublisher``, topic creation and checks (``ensure_topics``);
- ``membership``: ``GroupMembership``, the replicas' consumer group over the state topic;
- ``group_contact``: whether this replica is in that group, from librdkafka's statistics (pure);
- ``probe``: the start-up check that a bootstrap broker answers.
"""
