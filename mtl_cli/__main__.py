"""`python -m mtl_cli` is the `mtl` command."""

from mtl_cli.cli import main

if __name__ == "__main__":
    main()
