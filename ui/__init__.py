"""Interactive side of the plugin: the dialog, the background task and the dependency report."""
