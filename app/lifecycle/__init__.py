"""The run lifecycle: naming, tiers, registration, archival and deletion (plain Python, no Flask)."""
