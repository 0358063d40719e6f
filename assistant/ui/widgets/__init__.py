"""The app's widgets, each named by its role; none imports ``ui.app`` (the app composes them)."""
