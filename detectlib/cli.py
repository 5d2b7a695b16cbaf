"""What every command line does with bad input: one line ``error: <message>`` on stderr and exit code 2.

Used by every ``python -m detectlib.<tool>``. ``@command`` wraps a ``main(argv)``: the errors that mean "this
input is wrong" (an unreadable image, a folder without the reference layout, a checkpoint that is not one or
would run code, weights that cannot be had, a path the system refuses) end the run with one line and exit code 2,
never a traceback; anything else is a bug and keeps its traceback. While the tool runs, warnings print as one
line ``warning: <message>`` (the skipped-file policy of ``data``: each skipped file, then the summary), context as
``note: <message>`` (``infer`` and ``gradcam_infer`` say which model the checkpoint holds), and file
names that are not valid UTF-8 print with backslash escapes instead of crashing the output.

Lean on purpose: importing it imports nothing heavy. Every bad-input error of the kit subclasses
``config.BadInputError`` (next to its old base, ``ValueError`` or ``RuntimeError``), so one class recognises them
all, whichever modules the command loaded.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import sys
import warnings
from collections.abc import Callable, Sequence

from .config import BadInputError, Profile
from .data.images import SkippedFileWarning
from .data.tools import CopySummary

EXIT_BAD_INPUT = 2


EXIT_INTERRUPTED = 130


def input_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean bad input (see the module docstring): the kit's ``BadInputError`` and a path
    the system refuses (``OSError``)."""
    return BadInputError, OSError


def one_line(err: BaseException | str) -> str:
    """The first non-empty line of an error's message (its type name when it has none)."""
    text = str(err)
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line or (type(err).__name__ if isinstance(err, BaseException) else "")


def fail(message: BaseException | str, code: int = EXIT_BAD_INPUT) -> int:
    """Print ``error: <one line>`` to stderr and return ``code`` (2)."""
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    return code


def add_reference_training_args(parser: argparse.ArgumentParser, batch_help: str = "batch size") -> None:
    """The reference's training arguments and defaults (§3.2), shared by both training commands."""
    parser.add_argument("--data_dir", default="data/raw/ADM", help="dataset root with train/ and val/, each "
                        "holding ai/ and nature/ (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=5, help="number of training epochs (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=16, help=f"{batch_help} (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-4, help="learning rate (default: %(default)s)")


def note(text: str) -> None:
    """A line of context on stderr, ``note: <text>``, for tools whose stdout is the reference's exact output."""
    print(f"note: {text}", file=sys.stderr, flush=True)


def profile_line(profile: Profile, model: str, reference: str, flags: str) -> str:
    """The one line every training command prints first: the profile, the model and where its weights come from,
    and how to switch (``reference``: what ``full`` runs, which is the reference's setup; ``flags``: the overrides)."""
    if profile.name == "full":
        return f"profile full: {model} (the reference's setup). Override with {flags}."
    return (f"profile {profile.name} (DETECTLIB_PROFILE): {model}. The reference's {reference} is "
            f"DETECTLIB_PROFILE=full; override with {flags}.")


def add_strict(parser: argparse.ArgumentParser, what: str = "an unreadable image file") -> None:
    """The ``--strict`` flag every folder-reading tool shares."""
    parser.add_argument("--strict", action="store_true",
                        help=f"stop with an error at the first problem ({what}) instead of skipping it with a "
                             "warning (the default: skip, warn, and summarise at the end)")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = f"warning: {one_line(message)}"
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:  # a progress bar may be on screen: print above it, not through it
        tqdm.tqdm.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr, flush=True)


def _tolerant_output() -> None:
    """Let a non-UTF-8 file name print (as ``caf\\udce9.png``) instead of raising ``UnicodeEncodeError``."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError, TypeError):  # a stream that cannot change: leave it
                pass


def command(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a CLI's ``main(argv)`` with the policy above (bad input -> one line + exit 2; Ctrl-C -> one line
    + exit 130, everything written so far complete, since every writer of the kit is atomic)."""

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        _tolerant_output()
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            warnings.simplefilter("always", SkippedFileWarning)  # every skipped file, on every run
            try:
                return main(argv)
            except KeyboardInterrupt:
                return fail("interrupted; every file written so far is complete (the kit writes atomically), "
                            "none is half-written", EXIT_INTERRUPTED)
            except Exception as err:
                if isinstance(err, input_errors()):
                    return fail(err)
                raise

    return wrapper


STRICT_HELP = ("check every file before copying anything: each must decode as an image and no destination may "
               "hold a different file; the first problem stops the run with nothing copied (default: copy bytes, "
               "skip what cannot be read as a file with a warning, keep conflicting destinations)")


def run_cli(tool: Callable[..., CopySummary], argv: Sequence[str] | None, prog: str) -> int:
    """The command line of a tool: one ``--flag`` per keyword of its signature (the reference's names and
    defaults, ``--strict`` a switch); bad input (a missing or empty ``--raw_dir``, a bad file under
    ``--strict``) is a one-line error with exit code 2 (``cli.command``)."""
    parser = argparse.ArgumentParser(prog=prog, description=(tool.__doc__ or "").splitlines()[0])
    for name, param in inspect.signature(tool).parameters.items():
        if isinstance(param.default, bool):
            parser.add_argument(f"--{name}", action="store_true", help=STRICT_HELP if name == "strict" else None)
            continue
        kind = int if isinstance(param.default, int) else str
        parser.add_argument(f"--{name}", type=kind, default=param.default, help=f"default: {param.default}")

    @command
    def main(args: Sequence[str] | None) -> int:
        try:
            tool(**vars(parser.parse_args(args)))
        except ValueError as err:  # e.g. a negative --n_per_class (a BadInputError goes to command)
            if isinstance(err, BadInputError):
                raise
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0

    return main(argv)
