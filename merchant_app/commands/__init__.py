"""Sub-commands of ``merchant-app``, one module each.

Each module defines ``add_parser(subparsers)``, which adds its parser and sets
``handler`` to a function taking the parsed arguments and returning an exit
code.
"""
