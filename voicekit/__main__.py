"""``python -m voicekit``: the same as the ``voicekit`` command."""

from .cli import main

raise SystemExit(main())
