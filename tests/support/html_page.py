"""Reads a served HTML page the way a person meets it: its text, its labels, its scripts."""

from __future__ import annotations

from html.parser import HTMLParser


class PageReader(HTMLParser):
    """Text outside scripts and styles, accessible labels and the title, script bodies by id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.labels: list[str] = []
        self.scripts: dict[str | None, str] = {}
        self.html_lang: str | None = None
        self._inside: list[str] = []
        self._script_id: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "html":
            self.html_lang = found.get("lang")
        for name in ("aria-label", "placeholder", "title", "alt"):
            if found.get(name):
                self.labels.append(found[name] or "")
        if tag in {"script", "style", "title"}:
            self._inside.append(tag)
            if tag == "script":
                self._script_id = found.get("id")
                self.scripts[self._script_id] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._inside and self._inside[-1] == tag:
            self._inside.pop()

    def handle_data(self, data: str) -> None:
        where = self._inside[-1] if self._inside else None
        if where == "script":
            self.scripts[self._script_id] += data
        elif where == "title":
            self.labels.append(data)
        elif where is None and data.strip():
            self.texts.append(data.strip())

    def words(self) -> set[str]:
        """Every text and label a person can see or hear, each whole."""
        return set(self.texts) | set(self.labels)


def read_page(page: str) -> PageReader:
    reader = PageReader()
    reader.feed(page)
    reader.close()
    return reader
