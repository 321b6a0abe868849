"""``python -m cyserve main:app``: the same command as the ``cyserve`` console script."""
from cyserve.cli import main

if __name__ == "__main__":
    main()
