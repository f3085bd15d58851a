"""A headless consortium on one computer: anvil, one Kubo node per merchant,
and one round driver per merchant, for ``merchant-app simulate`` and tests."""
