"""The comparison runner: configs, single runs, the parallel resumable matrix, and reports."""
