"""The ``cpn`` command line (typer)."""
