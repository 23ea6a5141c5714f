"""The command line (exportjobs.cli)."""
