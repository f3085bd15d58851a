"""Tests that the committed demo sample matches its generator."""

from __future__ import annotations

import csv
from pathlib import Path

from ml_model.generate_sample import generate

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "ml_model" / "sample"


def test_sample_files_match_generator(tmp_path):
    paths = generate(tmp_path)

    for path in paths:
        committed = SAMPLE_DIR / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} differs from the generator's output; rerun "
            "ml_model/generate_sample.py and commit the result"
        )


def test_sample_shops_share_customers_and_products(tmp_path):
    paths = generate(tmp_path)
    customers = []
    products = []
    for path in paths:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        customers.append({row["user_id"] for row in rows})
        products.append({row["product_id"] for row in rows})

    assert customers[0] & customers[1] & customers[2]
    assert products[0] & products[1] & products[2]
