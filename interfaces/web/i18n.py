"""The message catalogue: one gettext catalogue per language under ``locale/``.

Templates and code write English msgids; a language is added by adding
``locale/<lang>/LC_MESSAGES/messages.po`` (``pybabel init``), without touching
a template. The ``.po`` files are compiled in memory at start, so the
repository holds no binary ``.mo`` files that could drift from their source.
"""

from __future__ import annotations

import io
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT = "en"


def _(message: str) -> str:
    """Marks a message for extraction; it is translated where it is shown."""
    return message


class Catalogue:
    def __init__(self, directory: Path = LOCALE_DIR) -> None:
        self._translations: dict[str, NullTranslations] = {}
        for po in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
            language = po.parent.parent.name
            with po.open("rb") as f:
                catalog = read_po(f, locale=language)
            mo = io.BytesIO()
            write_mo(mo, catalog)
            mo.seek(0)
            self._translations[language] = Translations(mo)
        self._translations.setdefault(DEFAULT, NullTranslations())

    @property
    def languages(self) -> list[str]:
        return sorted(self._translations)

    def negotiate(self, accept_language: str | None) -> str:
        """The best of our languages for an Accept-Language header (q-values honoured)."""
        wanted: list[tuple[float, str]] = []
        for part in (accept_language or "").split(","):
            tag, _sep, params = part.strip().partition(";")
            quality = 1.0
            if params.strip().startswith("q="):
                try:
                    quality = float(params.strip()[2:])
                except ValueError:
                    continue
            if tag and quality > 0:
                wanted.append((quality, tag.replace("-", "_")))
        preferred = [tag for _q, tag in sorted(wanted, key=lambda w: -w[0])]
        try:
            chosen = Locale.negotiate(preferred, self.languages, sep="_")
        except (UnknownLocaleError, ValueError):
            chosen = None
        return str(chosen) if chosen is not None else DEFAULT

    def translations(self, language: str) -> NullTranslations:
        return self._translations.get(language, self._translations[DEFAULT])
