"""Build the optional C part of the store. Everything else is in pyproject.toml.

``merchant_app.store._rowsource`` lets SQLite read an import's columns straight
from memory (see its source). It is optional: where it cannot be built (no C
compiler, or no ``sqlite3ext.h`` from libsqlite3-dev), the install goes on and
the import binds its values from Python instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "merchant_app.store._rowsource",
            sources=["merchant_app/store/_rowsource.c"],
            # Hidden by default: only the functions marked MR_EXPORT and the
            # module's PyInit are visible to ctypes and the import system.
            extra_compile_args=[
                "-O2",
                "-Wall",
                "-Wextra",
                "-std=c11",
                "-fvisibility=hidden",
            ],
            optional=True,
        )
    ]
)
