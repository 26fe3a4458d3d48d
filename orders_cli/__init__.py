"""The `orders` command: the one entry point that starts every kind of process.

It sits above both sides: the only package allowed to import `app` and `projectors`.
"""
