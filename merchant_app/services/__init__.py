"""Local services for the built-in default: a Kubo node and an anvil chain."""
