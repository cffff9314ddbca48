"""Models arrive with this app's issue; the app is registered so its migrations have a home."""
