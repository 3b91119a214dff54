"""Sluice: a lightweight, self-hosted analytics pipeline."""
