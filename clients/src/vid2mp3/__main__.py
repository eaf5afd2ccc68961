"""`python -m vid2mp3`: the command line."""
from .cli import main

main()
