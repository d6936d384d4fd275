"""A synthetic city that drives a running taxi server over its public API.

`python manage.py simulate --help`; `make demo` runs one against a stack it
starts itself.
"""
