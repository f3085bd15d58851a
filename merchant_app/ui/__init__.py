"""The PySide6 GUI: the only package that imports Qt; it calls the core parts."""
