"""Ingestion: validate, stamp, and durably append events to the raw log."""
