"""Command line: ``python -m sanitizer INPUT -o OUTPUT [--report REPORT.json]``.

Exit status: 0 rebuilt (OUTPUT written), 3 refused (no OUTPUT written; the report says
why), 2 usage (bad arguments, unreadable INPUT, unwritable OUTPUT or REPORT). Output and
report are written to a temporary file in the same directory and renamed into place,
so a reader never sees a partial file.

``python -m sanitizer serve --socket PATH --keys DIR`` runs the signing service instead
(``sanitizer/service.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from sanitizer.limits import limits_from_cli
from sanitizer.pool import sanitize_file

EXIT_REBUILT = 0
EXIT_USAGE = 2
EXIT_REFUSED = 3


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename (never a partial file)."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sanitizer",
        description="Rebuild a file without active content (無害化), or refuse it.",
        epilog="exit status: 0 rebuilt, 3 refused (see the report), 2 usage error",
    )
    parser.add_argument("input", type=Path, help="file to sanitise (only read)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the rebuilt file")
    parser.add_argument("--report", type=Path, help="write a JSON report here (on success and on refusal)")
    parser.add_argument("--name", help="declared file name to judge the extension by (default: INPUT's name)")
    parser.add_argument("--timeout", type=float, help="wall-clock limit in seconds")
    parser.add_argument("--cpu-seconds", type=int, help="CPU-time limit in seconds")
    parser.add_argument("--memory-mb", type=int, help="address-space limit in MiB")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        # The long-running service (issue 3, item 9); imported here so the one-shot CLI stays small.
        from sanitizer.service import main as serve_main

        return serve_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        limits = limits_from_cli(args.timeout, args.cpu_seconds, args.memory_mb)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.input.is_file():
        parser.error(f"INPUT is not a readable file: {args.input}")
    for target in (args.output, args.report):
        if target is not None and not (target.parent if str(target.parent) else Path(".")).is_dir():
            parser.error(f"directory does not exist: {target.parent}")
    if args.report is not None and args.report.resolve() == args.output.resolve():
        parser.error("--report and --output must differ")
    try:
        result = sanitize_file(args.input, declared_name=args.name, limits=limits)
    except OSError as exc:
        parser.error(f"cannot read INPUT: {exc.strerror}")
    try:
        if result.rebuilt and result.data is not None:
            _write_atomically(args.output, result.data)
        if args.report is not None:
            _write_atomically(args.report, result.report.to_json().encode("utf-8"))
    except OSError as exc:
        print(f"python -m sanitizer: cannot write output: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    report = result.report
    if result.rebuilt:
        if report.output_extension and args.output.suffix.lower().lstrip(".") != report.output_extension:
            print(
                f"note: content is .{report.output_extension}; consider naming the output accordingly",
                file=sys.stderr,
            )
        return EXIT_REBUILT
    ja, en = report.to_dict()["message"]["ja"], report.to_dict()["message"]["en"]
    print(f"refused [{report.code.value}] {ja} / {en}", file=sys.stderr)
    return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
