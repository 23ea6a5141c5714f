"""mitmproxy addons for exportJobs traffic."""
