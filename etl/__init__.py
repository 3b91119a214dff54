"""The ETL: renders sql/etl/*.sql.j2 and runs them, turning raw events into analyst tables."""
