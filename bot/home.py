"""The App Home tab as a Block Kit view: what is indexed, the last seven days, the
questions the docs did not cover, and (for admins) a Reindex button. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.answer_stats import WeekStats
from bot.index_status import IndexStatus
from bot.mrkdwn import escape_mrkdwn

HOME_REINDEX = "home_reindex"  # the admin's Reindex button
MAX_GAP_SHOWN_CHARS = 150
MAX_SECTION_CHARS = 3000
MAX_HOME_BLOCKS = 100

View = dict[str, Any]
Block = dict[str, Any]


def home_view(
    *,
    week: WeekStats,
    index: Sequence[IndexStatus],
    index_readable: bool = True,
    admin: bool = False,
    notice: str = "",
    now: float,
) -> View:
    """The home view of one user. ``index``: what each doc set serves, empty with
    ``index_readable`` when nothing was recorded yet; ``index_readable`` False: the
    records could not be read (Redis down).
    ``notice`` (mrkdwn, already escaped) goes on top: what the user's last click did."""
    blocks: list[Block] = [_header("ragbot: answers from the docs")]
    if notice:
        blocks.append(_section(notice))
    blocks += [
        _section("*What is indexed*\n" + index_text(index, readable=index_readable)),
        {"type": "divider"},
        *week_blocks(week),
        {"type": "divider"},
        _section("*Questions the docs did not cover* (last 7 days)\n" + gaps_text(week)),
    ]
    if admin:
        blocks += [{"type": "divider"}, *reindex_blocks()]
    blocks.append(_context(f"Updated {_date(now)}. Open this tab again to refresh."))
    return {"type": "home", "blocks": blocks[:MAX_HOME_BLOCKS]}


def index_text(index: Sequence[IndexStatus], *, readable: bool) -> str:
    if not readable:
        return (
            "I can't read what is indexed right now (Redis is unavailable). Questions may "
            "still be answered; open this tab again in a minute."
        )
    if not index:
        return (
            "No index has been reported yet: nothing is indexed, or no worker has started "
            "since it was built. An admin can re-index with `/reindex`."
        )
    if len(index) == 1:
        return docset_text(index[0])
    return "\n".join(f"• *{escape_mrkdwn(s.docset)}*: {docset_text(s)}" for s in index)


def docset_text(index: IndexStatus) -> str:
    """One doc set's index: size, git commit, version, when and by whom it was built."""
    documents = f"{index.documents:,} documents, " if index.documents is not None else ""
    built = f"built {_date(index.built_at)}" if index.built_at else "build time unknown"
    who = f" by <@{index.built_by}>" if index.built_by else " (not from Slack)"
    commit = ""
    if index.commit:
        when = f" of {_date(index.commit_at)}" if index.commit_at else ""
        commit = f", commit `{escape_mrkdwn(index.commit[:7])}`{when}"
    return (
        f"{documents}{index.chunks:,} chunks{commit}\n"
        f"Version `{escape_mrkdwn(index.version)}`, {built}{who}"
    )


def week_blocks(week: WeekStats) -> list[Block]:
    if not week.available:
        return [
            _section(
                "*Last 7 days*\nStatistics are unavailable right now (Redis is unavailable); "
                "open this tab again in a minute."
            )
        ]
    share = f" ({100 * week.answered // week.questions}%)" if week.questions else ""
    fields = [
        f"*Questions*\n{week.questions:,}",
        f"*Answered*\n{week.answered:,}{share}",
        f"*Not covered*\n{week.not_covered:,}",
        f"*Feedback*\n👍 {week.up:,}   👎 {week.down:,}",
    ]
    return [
        _section("*Last 7 days*"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]


def gaps_text(week: WeekStats) -> str:
    if not week.available:
        return "Unavailable right now."
    if not week.gaps:
        return "None: every question found an answer in the docs."
    lines = [f"• {escape_mrkdwn(_cut(question))} ({count}×)" for question, count in week.gaps]
    return _cut("\n".join(lines), MAX_SECTION_CHARS - 100)


def reindex_blocks() -> list[Block]:
    """Shown to admins only: the button starts a re-index like ``/reindex``."""
    button = {
        "type": "button",
        "action_id": HOME_REINDEX,
        "text": {"type": "plain_text", "text": "Reindex the docs", "emoji": True},
        "style": "primary",
        "value": "all",
        "confirm": {
            "title": {"type": "plain_text", "text": "Re-index the docs?"},
            "text": {
                "type": "plain_text",
                "text": "The current index keeps answering until the new one is ready.",
            },
            "confirm": {"type": "plain_text", "text": "Reindex"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        },
    }
    return [
        _section("*Admin*\nRe-index every document; progress goes to your DM with me."),
        {"type": "actions", "block_id": "home_admin", "elements": [button]},
    ]


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_SECTION_CHARS)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _date(unix_s: float) -> str:
    """A date Slack shows in the reader's time zone (UTC in the fallback)."""
    fallback = datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(unix_s)}^{{date_short_pretty}} at {{time}}|{fallback}>"


def _cut(text: str, limit: int = MAX_GAP_SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
