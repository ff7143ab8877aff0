"""The UI's texts live in one gettext catalogue; a language is a .po file away."""

from __future__ import annotations

from configparser import ConfigParser
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from interfaces.web.i18n import LOCALE_DIR, Catalogue

WEB = LOCALE_DIR.parent


def _extracted() -> set[str]:
    config = ConfigParser()
    config.read(WEB / "babel.cfg")
    method_map = [
        (section.split(":", 1)[1].strip(), section.split(":", 1)[0])
        for section in config.sections()
    ]
    options_map = {pattern: dict(config[f"{method}: {pattern}"]) for pattern, method in method_map}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB), method_map=method_map, options_map=options_map
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_text_of_the_templates_and_pages_is_in_the_catalogue() -> None:
    extracted = _extracted()
    assert "Invalid username or password" in extracted
    assert "Register for 2FA" in extracted
    for po in [LOCALE_DIR / "messages.pot", *LOCALE_DIR.glob("*/LC_MESSAGES/messages.po")]:
        with po.open("rb") as f:
            catalogued = {m.id for m in read_po(f) if m.id}
        missing = sorted(extracted - catalogued)
        assert missing == [], f"{po}: run pybabel extract and update (see i18n.py): {missing}"


def test_a_language_is_added_with_a_po_file_alone(tmp_path: Path) -> None:
    german = tmp_path / "de" / "LC_MESSAGES"
    german.mkdir(parents=True)
    (german / "messages.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Log in"\nmsgstr "Anmelden"\n',
        encoding="utf-8",
    )
    catalogue = Catalogue(tmp_path)
    assert catalogue.negotiate("de-CH, de;q=0.9, en;q=0.5") == "de"
    assert catalogue.translations("de").gettext("Log in") == "Anmelden"
    assert catalogue.negotiate("fr") == "en"
    assert catalogue.translations("en").gettext("Log in") == "Log in"


def test_english_ships() -> None:
    assert "en" in Catalogue().languages
