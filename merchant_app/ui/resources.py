"""Paths of the app's icon and style sheet in the ``resources`` folder."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def app_icon_path() -> Path:
    """Return the path of the app icon (an SVG file)."""
    return RESOURCES / "icons" / "app.svg"


def style_sheet() -> str:
    """Return the Qt style sheet, or "" (Qt's default look) when it is missing."""
    path = RESOURCES / "style.qss"
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        logger.warning("style sheet %s not read: %s", path, exc)
        return ""
