"""Server-side flow runs live here (SPEC §8); the runtime arrives with its own issue."""
