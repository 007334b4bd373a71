"""Export formats (plain Python, in ``formats``); the Django side is ``labeling.selectors.exports``."""
