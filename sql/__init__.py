"""The SQL Sluice runs, shipped inside the package: `migrations/` (the schema) and `etl/` (the jobs).

Installed as `sluice.sql`; code reads it through `importlib.resources`, so a wheel, an editable
install and the Docker image all find the same files.
"""
