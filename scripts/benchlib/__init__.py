"""The pieces of scripts/bench: measured child processes, the emulator, the rows, the report."""
