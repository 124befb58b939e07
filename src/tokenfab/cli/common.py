"""Shared CLI plumbing: one-line errors with exit code 2, JSON output, rich console."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

try:  # typer >= 0.16 carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import ClickException, NoArgsIsHelpError

from tokenfab.jsonsafe import json_safe
from tokenfab.specs import SpecError

# Piped output (no terminal) gets a wide console so tables are not folded to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class UserError(Exception):
    """A problem with what the user asked for (not a bug): printed as one line, exit 2."""


def print_error(msg: str) -> None:
    """`error: msg` as one line on stderr."""
    err_console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)


def handle_errors(fn: Callable) -> Callable:
    """Decorator: user-facing errors become `error: ...` on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (SpecError, UserError, ValueError) as exc:
            print_error(_error_line(exc))
            raise typer.Exit(code=2) from None
        except OSError as exc:  # a path that is a folder, too long, unreadable, missing...
            print_error(_os_error_line(exc))
            raise typer.Exit(code=2) from None

    return wrapper


def _error_line(exc: Exception) -> str:
    """One line for a user-facing error. A pydantic validation error names the fields and what each
    must be (`specs.base.format_validation_error`: "slo_ttft_ms: Input should be greater than 0"), not
    the internal model it checks ("1 validation error for Traffic")."""
    from pydantic import ValidationError

    from tokenfab.specs.base import format_validation_error

    if isinstance(exc, ValidationError):
        return format_validation_error(exc)
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _os_error_line(exc: OSError) -> str:
    """One line for an OSError: what went wrong and the path (shortened past 80 characters)."""
    name = str(exc.filename) if exc.filename is not None else ""
    if len(name) > 80:
        name = name[:60] + "…" + name[-19:]
    what = exc.strerror or str(exc).splitlines()[0] or type(exc).__name__
    return f"{what}: {name}" if name else what


@contextlib.contextmanager
def _usage_errors_one_line() -> Iterator[None]:
    """A click usage or parameter error (unknown option, bad type, out of range, missing option)
    becomes `error: ...` on one line and exit code 2, instead of a usage box."""
    try:
        yield
    except NoArgsIsHelpError:
        raise  # no arguments at all: the help is the answer
    except ClickException as exc:
        print_error(" ".join(exc.format_message().split()))
        raise typer.Exit(code=2) from None


class _FlagsWithoutMetavar:
    """Boolean flags (and --help) take no value: no `<bool>` metavar beside them in --help."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


_NEEDS = (re.compile(r"^(--[a-z][\w-]*): "), re.compile(r"\((--[a-z][\w-]*)\)\.?\s*$"))
"""How an option's help says it belongs to a mode: "--train: ..." or "... (--npv)"."""


def _check_needs(cmd, ctx) -> None:
    """An option typed on the command line whose help ties it to a mode flag (`_NEEDS`) that is off
    is refused in one line ("--draws needs --npv"): it would otherwise be ignored without a word."""
    flags = {opt: p for p in cmd.params for opt in getattr(p, "opts", ())}
    for param in cmd.params:
        # By name: typer may carry its own copy of click's ParameterSource enum.
        if getattr(ctx.get_parameter_source(param.name), "name", None) != "COMMANDLINE":
            continue
        text = getattr(param, "help", None) or ""
        for pat in _NEEDS:
            m = pat.search(text)
            mode = flags.get(m.group(1)) if m else None
            if mode is not None and mode is not param and not ctx.params.get(mode.name):
                raise typer.BadParameter(f"only with {m.group(1)}", param_hint=f"'{param.opts[0]}'")


class Command(_FlagsWithoutMetavar, TyperCommand):
    """Every command of the app (see `App`): no path option is given as "" (it would mean the
    current folder), no number option takes inf or nan, no option of a mode goes without its mode."""

    def parse_args(self, ctx, args):
        paths = {opt for p in self.params if getattr(getattr(p, "type_descriptor", None), "is_path", False)
                 for opt in p.opts}
        for i, token in enumerate(args):
            if token == "--":
                break
            name, eq, value = token.partition("=")
            if name in paths and (eq and not value.strip() or not eq and i + 1 < len(args) and not args[i + 1].strip()):
                raise typer.BadParameter("empty path", param_hint=f"'{name}'")
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        for param in self.params:
            value = ctx.params.get(param.name)
            values = value if isinstance(value, (list, tuple)) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise typer.BadParameter("must be a finite number", param_hint=f"'{param.opts[0]}'")
        _check_needs(self, ctx)
        _check_outputs(ctx.params)
        return super().invoke(ctx)


OUTPUT_FILES = ("html", "output")
"""Options that name a file a command writes (checked before the work, not after it)."""
OUTPUT_FOLDERS = ("out",)
"""Options that name a folder a command writes into."""


def _check_outputs(params: dict) -> None:
    """Output paths are checked before the work: a file option must not name a folder and its
    folder must exist and be writable; a folder option must not name an existing file."""
    for name in OUTPUT_FILES:
        path = params.get(name)
        if not isinstance(path, Path):
            continue
        hint = f"'--{name}'"
        if path.is_dir():
            raise typer.BadParameter(f"{path} is a folder; give a file name", param_hint=hint)
        folder = path.parent
        if not folder.is_dir():
            raise typer.BadParameter(f"folder {folder} does not exist", param_hint=hint)
        if not os.access(folder, os.W_OK):
            raise typer.BadParameter(f"folder {folder} is not writable", param_hint=hint)
    for name in OUTPUT_FOLDERS:
        path = params.get(name)
        if isinstance(path, Path) and path.exists() and not path.is_dir():
            raise typer.BadParameter(f"{path} is a file; give a folder", param_hint=f"'--{name}'")


class OneLineErrorGroup(_FlagsWithoutMetavar, TyperGroup):
    """The app's command group: a usage or parameter error is one line (`_usage_errors_one_line`)."""

    def make_context(self, *args: Any, **kwargs: Any):
        with _usage_errors_one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _usage_errors_one_line():
            return super().invoke(ctx)


class App(typer.Typer):
    """The typer app with one-line usage errors and `Command` as every command's class."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=OneLineErrorGroup, **kwargs)

    def command(self, *args: Any, **kwargs: Any):
        kwargs["cls"] = kwargs.get("cls") or Command
        return super().command(*args, **kwargs)


def print_json(obj: Any) -> None:
    """Print JSON to stdout (nothing else goes to stdout in --json mode)."""
    sys.stdout.write(json.dumps(json_safe(obj), indent=2) + "\n")


def emit(result: dict, as_json: bool, show: Callable[[], None], html: Path | None = None) -> None:
    """A command's result: JSON on stdout (with the page's path under `html` when one was written)
    or its tables (`show`), then a line naming the page written."""
    if html is not None:
        result["html"] = str(html)
    if as_json:
        print_json(result)
        return
    show()
    if html is not None:
        console.print(f"wrote {html}")


def split_csv(values: list[str] | None) -> list[str]:
    """Accept `--chips a,b --chips c` as [a, b, c]."""
    out: list[str] = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def id_list(values: list[str] | None, option: str) -> list[str] | None:
    """A comma-separated id list option: None when the option is not given (the command's
    defaults); given but empty (`--models ""`) is an error, never the defaults."""
    if values is None:
        return None
    ids = split_csv(values)
    if not ids:
        raise UserError(f"{option} is empty: give ids separated by commas, or leave {option} out for the defaults")
    return ids


def fitted_table(title: str, columns: list[tuple[str, str]], rows: list[tuple[list[str], str | None]], width: int,
                 drop_order: list[str]) -> tuple[Table, list[str]]:
    """(table, headers left out): every cell shown whole on one line (an id is never cut into
    another, `h200-sxm` into `h20…`); when the table would be wider than `width`, the columns of
    `drop_order` are left out, first to last, until it fits. `columns`: (header, justify), a header
    may have several lines; `rows`: (cells as rich markup, row style)."""
    def need(i: int) -> int:
        header = max(Text(line).cell_len for line in columns[i][0].split("\n"))
        return max([header] + [Text.from_markup(cells[i]).cell_len for cells, _ in rows])

    widths = [need(i) for i in range(len(columns))]
    shown = list(range(len(columns)))
    dropped = []
    for header in drop_order:
        if sum(widths[i] + 3 for i in shown) + 1 <= width:
            break
        i = next(i for i, (h, _) in enumerate(columns) if h == header)
        shown.remove(i)
        dropped.append(header.replace("/\n", "/").replace("\n", " "))
    table = Table(title=title, title_justify="left")
    for i in shown:
        table.add_column(columns[i][0], justify=columns[i][1], no_wrap=True, min_width=widths[i])
    for cells, style in rows:
        table.add_row(*(cells[i] for i in shown), style=style)
    return table, dropped


def reject_empty(**options: str | None) -> None:
    """An option given as "" is an error, never its default: `reject_empty(**{"--node": node})`."""
    for name, value in options.items():
        if value is not None and not value.strip():
            raise UserError(f"{name} is empty: give a value, or leave {name} out for the default")
