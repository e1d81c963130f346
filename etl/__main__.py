"""`python -m etl` runs the same CLI as the `etl` console script."""

from etl.cli import main

if __name__ == "__main__":
    main()
