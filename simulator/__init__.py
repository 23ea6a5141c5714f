"""The emulator of the exportJobs service (``emulator``) and the YAML scenario runner."""
