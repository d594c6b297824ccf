"""Named model and loss presets ("tiny", "paper") that configs/*.py build on."""
