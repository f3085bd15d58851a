"""Merchant app: train one shared product recommender without sharing data."""

__version__ = "0.1.0"
