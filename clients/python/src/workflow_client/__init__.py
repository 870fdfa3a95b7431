"""Python client for the Workflow API v1."""
