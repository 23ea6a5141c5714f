"""The scenario runner (exportjobs.simulator): loading, running, reports."""
