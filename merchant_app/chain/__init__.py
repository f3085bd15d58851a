"""The Ethereum side of the app: the consortium contract and its client."""
