"""``python -m hpsearch.cli`` (how local pool workers are started)."""

from hpsearch.cli import main

main(prog_name="hpsearch")
