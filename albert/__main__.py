"""``python -m albert`` runs the command line (so ``torchrun -m albert pretrain ...`` works too)."""

from albert.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
