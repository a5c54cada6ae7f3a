"""``python -m nndoctor``."""

from nndoctor.cli import main

main()
