"""``python -m voicekit``, and the ``voicekit`` command's entry point (pyproject.toml).

Ctrl-C ends the command with exit code 130 and no traceback at any moment,
including the tenth of a second in which its modules load (numpy among them),
before ``cli.main`` handles Ctrl-C itself.
"""

import sys

# Nothing else loads before main() runs: what loads here, Ctrl-C could still interrupt with a traceback.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def main() -> int:
    """Run the ``voicekit`` command with the process's arguments; its exit code."""
    try:
        run = _load_cli()
        return run()
    except KeyboardInterrupt:
        print(file=sys.stderr)
        # as cli._ctrl_c: clears CPython's note of a KeyboardInterrupt that left exec()'d source
        # (a second Ctrl-C while a module loads), which would end the process by SIGINT, not 130 (gh-128130)
        exec("")
        return 130


def _load_cli() -> "Callable[[], int]":
    """``cli.main``, imported with Ctrl-C held back until its modules are loaded.

    A KeyboardInterrupt raised inside an import can come out as something else:
    an ImportError from a C extension (numpy's, when Ctrl-C lands as it imports
    ``datetime``), a traceback "ignored" in an import lock's callback, or be
    caught by a module and lost. So Ctrl-C is only noted while the modules load
    (a tenth of a second), then raised; pressed twice, it is raised at once.
    """
    import signal

    pressed = False

    def note(signum: int, frame: object) -> None:
        nonlocal pressed
        if pressed:
            raise KeyboardInterrupt
        pressed = True

    # only over Python's own handler, in the main thread: an ignored SIGINT stays ignored
    noting = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if noting:
        try:
            signal.signal(signal.SIGINT, note)
        except ValueError:  # not the main thread, where no Ctrl-C arrives either
            noting = False
    try:
        from .cli import main
    finally:
        if noting:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt
    return main


if __name__ == "__main__":
    raise SystemExit(main())
