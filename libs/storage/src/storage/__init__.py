"""MongoDB repositories and the S3 asset store. Persistence shapes live here, not contracts."""
