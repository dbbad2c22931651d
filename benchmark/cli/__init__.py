"""The ``bench`` command line: thin commands over the library."""
