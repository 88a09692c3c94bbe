"""`python -m toolkit` is the same as the `toolkit` console script."""

from toolkit.cli import main

if __name__ == "__main__":
    main()
