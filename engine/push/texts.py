"""Localized push texts, by ``_status_notification_language`` (``fr``, ``fr-CA``...), English
when the language has no text."""

from __future__ import annotations

from typing import Any

TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "CALLBACK_UPCOMING": {
        "en": ("Your callback is coming up", "We expect to call you in about {minutes} minutes."),
        "fr": ("Votre rappel approche", "Nous prévoyons de vous appeler dans environ {minutes} minutes."),
        "de": ("Ihr Rückruf steht bevor", "Wir rufen Sie voraussichtlich in etwa {minutes} Minuten an."),
    },
    "CALLBACK_READY": {
        "en": ("It is your turn", "An agent is ready for you. Open the app to call us."),
        "fr": ("C'est votre tour", "Un conseiller est prêt. Ouvrez l'application pour nous appeler."),
        "de": ("Sie sind an der Reihe", "Ein Mitarbeiter ist bereit. Öffnen Sie die App, um uns anzurufen."),
    },
    "CALLBACK_CALL_IN_DETAILS": {
        "en": ("Call us now", "Dial {access_number} and enter code {access_code}."),
        "fr": ("Appelez-nous", "Composez le {access_number} et saisissez le code {access_code}."),
        "de": ("Rufen Sie uns an", "Wählen Sie {access_number} und geben Sie den Code {access_code} ein."),
    },
    "CALLBACK_PURGED": {
        "en": ("Callback cancelled", "We could not reach you in time; your callback request was removed."),
        "fr": ("Rappel annulé", "Nous n'avons pas pu vous joindre à temps ; votre demande a été retirée."),
        "de": ("Rückruf storniert", "Wir konnten Sie nicht rechtzeitig erreichen; Ihre Anfrage wurde entfernt."),
    },
    "CALLBACK_ATTEMPT_FAILED": {
        "en": ("We missed you", "We tried to call you and will try again."),
        "fr": ("Appel manqué", "Nous avons essayé de vous appeler et réessaierons."),
        "de": ("Nicht erreicht", "Wir haben versucht, Sie anzurufen, und versuchen es erneut."),
    },
    "CALLBACK_FINAL_ATTEMPT_FAILED": {
        "en": ("We could not reach you", "Our last attempt to call you failed."),
        "fr": ("Nous n'avons pas pu vous joindre", "Notre dernière tentative d'appel a échoué."),
        "de": ("Wir konnten Sie nicht erreichen", "Unser letzter Anrufversuch ist fehlgeschlagen."),
    },
}


def localized(event: str, language: str | None, values: dict[str, Any]) -> tuple[str, str, str]:
    """(title, body, language used): the language, its base (``fr`` for ``fr-CA``), else English."""
    table = TEXTS[event]
    lang = (language or "en").strip().lower().replace("_", "-")
    for candidate in (lang, lang.split("-")[0], "en"):
        if candidate in table:
            title, body = table[candidate]
            return title, body.format_map(_Missing(values)), candidate
    raise KeyError(event)


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "?"
