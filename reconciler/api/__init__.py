"""The read-only views: the seed's query API, `/api/v1`, metrics and the dashboard."""
