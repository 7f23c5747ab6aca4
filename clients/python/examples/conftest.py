"""An app's test suite enables PiCloud's pytest plugin with one line."""

pytest_plugins = ["picloud.testing"]
