"""Every test directory shares the real-stack fixtures."""

pytest_plugins = ["devstack.pytest_plugin"]
