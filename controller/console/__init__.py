"""The web console (GBA-6.7 visualisation): served by the controller itself."""
