# HTTP endpoints (telematics ingestion) live here.
