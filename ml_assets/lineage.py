"""`python -m ml_assets.lineage <version>`: the command's name; ml_assets/cli/lineage.py does it."""

if __name__ == "__main__":
    from ml_assets.cli.lineage import main

    raise SystemExit(main())
