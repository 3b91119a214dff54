"""Reports: the read API over the ETL's tables (and the queries the dashboard shares)."""
