"""``python -m adaptcli`` (also what ``accelerate launch -m adaptcli`` runs)."""

from adaptcli.cli import main

if __name__ == "__main__":
    main()
