"""The reports: the API, the seeds' endpoints, access."""
