"""The applications built on the runtime: the `ggraph` command line (cli.py) and what its
subcommands use (chat.py, pull.py, bench.py)."""
