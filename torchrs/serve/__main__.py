"""``python -m torchrs.serve MODEL_DIR``."""

from torchrs.serve.cli import main

raise SystemExit(main())
