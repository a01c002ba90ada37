"""Locust users, one module per scenario; imported only inside the locust process."""
