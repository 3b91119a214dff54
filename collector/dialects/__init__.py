"""Other analytics products' event APIs, translated into the collector's own events.

Each module turns one dialect's decoded body into `/collect`-shaped event objects (pure functions,
no I/O), which then take the one way in every event takes: validation, dedup, IP privacy and the
group-commit write (collector/routes.py `ingest`). collector/dialects/http.py holds the endpoints.
"""
