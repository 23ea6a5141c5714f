"""The emulator (exportjobs.simulator.emulator): the service as clients see it."""
