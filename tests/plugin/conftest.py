"""The plugin's tests run pytest in a separate process on files they write (pytester)."""

pytest_plugins = ["pytester"]
