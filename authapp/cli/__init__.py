"""The `flask` commands (commands.py) and the demo seed they run (seed.py)."""
