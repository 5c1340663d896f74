"""The VM configuration language: parsing, defaults, validation (see sizes.py for sizes)."""
