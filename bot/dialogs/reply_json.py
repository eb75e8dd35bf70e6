"""A reply as JSON and back: kept (sealed) so that a repeated request gets the very same
screen without taking a step again."""

from __future__ import annotations

import json

from bot.dialogs.model import Choice, Expect, Reply


def reply_to_json(reply: Reply) -> str:
    return json.dumps(
        {
            "text": reply.text,
            "choices": [[choice.key, choice.label] for choice in reply.choices],
            "expects": reply.expects.value,
            "brief": reply.brief,
            "language": reply.language,
            "brief_gives_way": reply.brief_gives_way,
        }
    )


def reply_from_json(raw: str) -> Reply:
    """Raises ValueError (or KeyError) on anything that is not a kept reply."""
    data = json.loads(raw)
    return Reply(
        text=str(data["text"]),
        choices=tuple(Choice(str(key), str(label)) for key, label in data["choices"]),
        expects=Expect(data["expects"]),
        brief=None if data["brief"] is None else str(data["brief"]),
        language=str(data["language"]),
        brief_gives_way=bool(data["brief_gives_way"]),
    )
