"""mmlk's version: the one place it is written (setup.py reads it without importing mmlk)."""
__version__ = '0.3.0'
