"""Emulator and traffic simulator for Microsoft Graph's Viva Goals exportJobs API."""

__version__ = "0.1.0"
