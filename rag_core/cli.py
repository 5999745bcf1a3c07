"""The ``ragbot`` command: index, ask, eval and demo (the Slack commands are added by bot.cli).

Errors a user can fix are printed as one line on stderr with a non-zero exit status;
programming errors keep their traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from rag_core.errors import RagbotError
from rag_core.settings import Settings, load_settings

EXIT_USER_ERROR = 2
Handler = Callable[[argparse.Namespace, Settings], int]
ParserExtension = Callable[[argparse._SubParsersAction], None]


def build_parser(extend: ParserExtension | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragbot", description="Answer questions about your docs, with cited sources."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = commands.add_parser("index", help="index the doc sets (or one) into Milvus")
    index.add_argument(
        "path", type=Path, nargs="?", help="a folder replacing a folder doc set's own, this once"
    )
    index.add_argument("--docset", metavar="NAME", help="index only this doc set")
    index.add_argument(
        "--recreate", action="store_true", help="re-embed everything (new model or dimension)"
    )
    index.set_defaults(handler=_cmd_index)

    docsets = commands.add_parser("docsets", help="list the doc sets and what is indexed")
    docsets.set_defaults(handler=_cmd_docsets)

    ask = commands.add_parser("ask", help="answer a question from the indexed docs")
    ask.add_argument("question")
    ask.add_argument("--docset", metavar="NAME", action="append", help="search only these")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    ask.set_defaults(handler=_cmd_ask)

    evaluate = commands.add_parser("eval", help="retrieval metrics over a questions file")
    evaluate.add_argument("questions", type=Path, help="JSONL with question and relevant")
    evaluate.add_argument("--docset", metavar="NAME", action="append", help="search only these")
    evaluate.add_argument("--k", type=int, default=5, help="cut-off for recall (default 5)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument(
        "--report", type=Path, metavar="FILE.html", help="also write a self-contained HTML page"
    )
    evaluate.set_defaults(handler=_cmd_eval)

    demo = commands.add_parser("demo", help="index the bundled sample docs and ask a question")
    demo.add_argument("question", nargs="?", default=None)
    demo.set_defaults(handler=_cmd_demo)

    if extend is not None:
        extend(commands)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    extend: ParserExtension | None = None,
    load: Callable[[], Settings] = load_settings,
) -> int:
    """Run one command; ``extend`` adds sub-commands and ``load`` reads their settings."""
    args = build_parser(extend).parse_args(argv)
    _configure_logging(verbose=args.verbose)
    try:
        settings = load()
        return int(args.handler(args, settings))
    except ValidationError as error:
        first = error.errors()[0]
        name = "_".join(str(p) for p in first["loc"]).upper()
        print(f"error: invalid setting {name}: {first['msg']}", file=sys.stderr)
    except RagbotError as error:
        print(f"error: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return EXIT_USER_ERROR


def _configure_logging(*, verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        logging.getLogger("pymilvus").setLevel(logging.ERROR)
        # Read by transformers and huggingface_hub when (and only if) they are imported.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if "transformers" in sys.modules:  # already imported: the variables came too late
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()


def _cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.commands import run_index

    run = run_index(settings, path=args.path, docset=args.docset, recreate=args.recreate)
    print(run.text)
    return EXIT_USER_ERROR if run.failed else 0


def _cmd_docsets(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.docset_table import docset_table

    print(docset_table(settings))
    return 0


def _cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.commands import format_answer
    from rag_core.components import build_cli_pipeline
    from rag_core.questions import validate_question

    validate_question(args.question, max_chars=settings.max_question_chars)
    pipeline, notices = build_cli_pipeline(settings)
    for notice in notices:
        print(f"note: {notice}", file=sys.stderr)
    answer = pipeline.ask(args.question, docsets=args.docset)
    if args.json:
        from rag_core.cache import answer_to_dict

        print(json.dumps(answer_to_dict(answer), ensure_ascii=False, indent=2))
    else:
        print(format_answer(answer))
    return 0


def _cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.commands import run_eval

    print(
        run_eval(
            settings,
            args.questions,
            k=args.k,
            as_json=args.json,
            docsets=args.docset,
            report_path=args.report,
        )
    )
    if args.report is not None:
        print(f"report written to {args.report}", file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.commands import run_demo

    return run_demo(settings, question=args.question)
