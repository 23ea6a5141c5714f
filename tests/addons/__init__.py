"""The mitmproxy addons (exportjobs.addons): record, replay, faults, the gate."""
