"""devstack: the project's real Kafka, MongoDB and S3 servers as local processes.

Use ``python -m devstack up|down|status|logs|env`` or, from code, ``devstack.api.ensure_up()``.
"""
