"""The terminal UI: a thin Textual face on the engine (the only package that imports Textual)."""
