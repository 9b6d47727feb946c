"""Redaction (S2): scrub personal and secret data before text leaves the machine or is trained on.

Detection runs on a normalised copy of the text (NFKC, so full-width digits and letters become ASCII;
zero-width characters dropped; Unicode dashes made ASCII) and reports spans in the original text.
Identifiers are validated where a checksum exists (Luhn for cards, mod-97 for IBANs, ``ipaddress`` for
IPs), so order numbers, version strings and prices stay as they are.

Person names use the first- and last-name lists that Faker (``faker`` on PyPI) ships for about eighty
locales, with Faker's common-word lists for English, German, French, Spanish, Dutch and Italian to keep
ordinary capitalised words out. Faker is maintained, pure Python, about 2 MB to download and reads its
data offline; NER models (spaCy, GLiNER) need a model download per language and are far larger. The
lists are combined with cues: titles (Mr, Frau, Mme, Sr, ...), "my name is" and its translations, form
labels (Name:, From:), greetings and signatures.

Dates and clock times are found too, only so that their digits and month names are never read as a
phone number or a name ("03/02/2026 12:15", "Jun 9 2026"); they are left as they are.

Two modes. For the cloud, ``redact`` and ``redact_many`` put numbered placeholders (``[EMAIL_1]``)
that ``restore`` reverses in the answer. For training, ``scrub_for_training`` puts realistic fakes
instead, consistent within an example, since a specialist trained on placeholders answers with them;
secrets are removed.

Redaction fails closed: anything that goes wrong inside detection raises ``RedactionError``, so a
caller sends nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from engine.errors import RedactionError

TYPES = ("EMAIL", "PHONE", "CARD", "IBAN", "IP", "URL_CREDENTIALS", "SECRET", "POSTCODE", "DOB", "NAME")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class Finding:
    """One redacted span; ``start`` and ``end`` index the original text."""

    type: str
    start: int
    end: int
    placeholder: str


@dataclass(frozen=True)
class Redaction:
    """The redacted text, what was found, and each placeholder's original value (for ``restore``)."""

    text: str
    findings: list[Finding]
    mapping: dict[str, str]


def redact(text: str) -> Redaction:
    """Replace personal and secret data with typed placeholders such as ``[EMAIL_1]``."""
    numbering = _Numbering()
    redacted, findings = _redact_one(text, numbering)
    return Redaction(text=redacted, findings=findings, mapping=dict(numbering.mapping))


def redact_many(texts: list[str]) -> tuple[list[str], dict[str, str]]:
    """Redact several texts (the messages of one request) with one shared numbering and mapping."""
    numbering = _Numbering()
    redacted = [_redact_one(text, numbering)[0] for text in texts]
    return redacted, dict(numbering.mapping)


_PLACEHOLDER = re.compile(r"\[\s*([A-Z_]+_\d+)\s*\]")


def restore(text: str, mapping: dict[str, str]) -> str:
    """Put the original values back where an answer echoes placeholders; unknown ones stay."""
    return _PLACEHOLDER.sub(lambda match: mapping.get(f"[{match.group(1)}]", match.group(0)), text)


SECRET_TYPES = frozenset({"URL_CREDENTIALS", "SECRET", "CARD", "IBAN"})


@dataclass(frozen=True)
class ScrubSummary:
    """What ``scrub_for_training`` changed, kept with a dataset so its job can say what was trained on.

    Counts are of distinct values within one example, summed over the examples: a name in both the
    prompt and the answer of an example counts once.
    """

    examples: int
    examples_changed: int
    surrogates: dict[str, int]  # personal values given a fake of the same shape, per type
    secrets_removed: dict[str, int]  # keys, passwords, cards, IBANs and credentials taken out, per type
    dropped: int  # examples left out because they could not be checked


def scrub_for_training(
    examples: Sequence[Sequence[str]], seed: int = 0
) -> tuple[list[list[str] | None], ScrubSummary]:
    """Scrub the messages of each example so the adapter cannot memorise anyone, yet can learn the task.

    Placeholders such as ``[NAME_1]`` would be learned as answers, so personal values get realistic
    surrogates: one fake per real value across all messages of an example (prompt and answer alike),
    in the same shape (a two-part name stays two parts, an e-mail address an e-mail address).
    Placeholders already in a message (cloud requests were sent redacted) get surrogates too. Secrets
    are removed, leaving ``[SECRET]``, ``[CARD]`` and so on. Each example is seeded from ``seed`` and
    its own text (case and spacing aside), so a build is reproducible whatever the order of the
    examples, and two spellings of one example still get the same fakes.

    Returns the scrubbed texts of each example, or None for an example that could not be checked
    (it must be left out), and the summary.
    """
    scrubbed: list[list[str] | None] = []
    surrogates: Counter[str] = Counter()
    secrets: Counter[str] = Counter()
    changed = dropped = 0
    for texts in examples:
        try:
            result, replaced = _scrub_example(texts, seed)
        except RedactionError:
            scrubbed.append(None)
            dropped += 1
            continue
        scrubbed.append(result)
        changed += bool(replaced)
        for kind, count in replaced.items():
            (secrets if kind in SECRET_TYPES else surrogates)[kind] += count
    summary = ScrubSummary(
        examples=len(examples),
        examples_changed=changed,
        surrogates=dict(sorted(surrogates.items())),
        secrets_removed=dict(sorted(secrets.items())),
        dropped=dropped,
    )
    return scrubbed, summary


# --- numbering and the pipeline -----------------------------------------------------------------------


class _Numbering:
    """Placeholders for one request: the same normalised value always gets the same placeholder."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.by_value: dict[tuple[str, str], str] = {}
        self.mapping: dict[str, str] = {}

    def placeholder(self, kind: str, canonical: str, original: str) -> str:
        key = (kind, canonical)
        if key not in self.by_value:
            self.counts[kind] += 1
            placeholder = f"[{kind}_{self.counts[kind]}]"
            self.by_value[key] = placeholder
            self.mapping[placeholder] = original
        return self.by_value[key]


# --- surrogates for training ----------------------------------------------------------------------


def _scrub_example(texts: Sequence[str], seed: int) -> tuple[list[str], Counter[str]]:
    """The example's texts with surrogates in, and how many distinct values of each type it held."""
    found = [sorted(_find(text) + _placeholders(text), key=lambda f: f.start) for text in texts]
    # Seeded by the text as the dataset's dedupe sees it, so near-duplicates get the same fakes.
    digest = hashlib.sha256("\x1e".join([str(seed), *map(_folded, texts)]).encode()).digest()
    surrogates = _Surrogates(
        int.from_bytes(digest[:8], "big"),
        {
            word.casefold()
            for text, spans in zip(texts, found, strict=True)
            for word in _name_words(text, spans)
        },
    )
    replacements: list[dict[int, tuple[int, str]]] = [{} for _ in texts]
    fakes: dict[str, str | None] = {}  # each value found, to its fake; None for a name (faked word by word)
    # Names first, so that an address such as anna.schmidt@... can be built from Anna Schmidt's fake.
    order = sorted(
        ((index, span) for index, spans in enumerate(found) for span in spans),
        key=lambda item: item[1].type != "NAME",
    )
    for index, span in order:
        text = texts[index]
        original = text[span.start : span.end]
        titled = _TITLE_BEFORE.search(text[max(0, span.start - 40) : span.start]) is not None
        fake = surrogates.replacement(span.type, span.canonical, original, titled)
        replacements[index][span.start] = (span.end, fake)
        if not _PLACEHOLDER.fullmatch(original):
            fakes[_folded(original)] = None if span.type == "NAME" else fake
    ordinary = _STOP_WORDS | _TITLES | _PARTICLES | _name_data().common
    for word in surrogates.words:
        if len(word) > 1 and word not in ordinary:  # "Will" alone may be the verb; "Weber" is a name
            fakes.setdefault(word, None)
    for index, text in enumerate(texts):
        for match in _repeats(text, found[index], fakes):
            fake = fakes.get(_folded(match.group())) or surrogates.name(match.group(), titled=False)
            replacements[index][match.start()] = (match.end(), fake)
    scrubbed = [
        _replace(text, [(start, end, fake) for start, (end, fake) in sorted(spans.items())])
        for text, spans in zip(texts, replacements, strict=True)
    ]
    counts = Counter(kind for kind, _ in {(span.type, span.canonical) for spans in found for span in spans})
    return scrubbed, counts


def _repeats(text: str, found: list[_Found], values: Iterable[str]) -> Iterator[re.Match[str]]:
    """Values found elsewhere in the example that the detectors missed here.

    The prompt may hold a cue ("From: Anna Weber") that the answer lacks, yet the answer must hold the
    same fake as the prompt. Nothing inside a detected value or a date is touched.
    """
    patterns = sorted(values, key=len, reverse=True)
    if not patterns:
        return
    blocked = [(span.start, span.end) for span in found] + [
        (hit.start, hit.end) for hit in _dates_and_times(text)
    ]
    alternatives = "|".join(r"\s+".join(map(re.escape, pattern.split())) for pattern in patterns)
    for match in re.finditer(rf"(?<!\w)(?:{alternatives})(?!\w)", text, re.IGNORECASE):
        if not any(start < match.end() and match.start() < end for start, end in blocked):
            yield match


def _folded(value: str) -> str:
    return " ".join(value.split()).casefold()


def _placeholders(text: str) -> list[_Found]:
    """Placeholders that an earlier redaction left (a cloud request and its answer), as values."""
    found = []
    for match in _PLACEHOLDER.finditer(text):
        kind = re.sub(r"_\d+$", "", match.group(1))
        if kind in TYPES:
            found.append(_Found(kind, match.start(), match.end(), f"[{match.group(1)}]"))
    return found


def _name_words(text: str, spans: list[_Found]) -> Iterator[str]:
    for span in spans:
        if span.type == "NAME":
            yield from _NAME_TOKEN.findall(text, span.start, span.end)


class _Surrogates:
    """Fakes for one example: the same real value always gets the same fake, in the same shape."""

    def __init__(self, seed: int, real_words: set[str]) -> None:
        from faker import Faker

        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.random = self.fake.random
        self.taken = set(real_words)  # a fake never equals a real name in the example, nor another fake
        self.words: dict[str, str] = {}  # each real name word, case-folded, to its fake
        self.values: dict[tuple[str, str], str] = {}
        self.domains: dict[str, str] = {}
        self.phones: dict[str, str] = {}

    def replacement(self, kind: str, canonical: str, original: str, titled: bool) -> str:
        """The fake for one occurrence; ``titled`` says a title (Mr, Frau) comes before a name."""
        key = (kind, canonical)
        if kind in SECRET_TYPES:
            return f"[{kind}]"
        if _PLACEHOLDER.fullmatch(original):
            if key not in self.values:
                self.values[key] = self._invented(kind)
            return self.values[key]
        if kind == "NAME":
            return self.name(original, titled)
        if kind == "PHONE":
            return self.phone(canonical, original)
        if key not in self.values:
            self.values[key] = self._new_value(kind, canonical, original)
        return self.values[key]

    def _invented(self, kind: str) -> str:
        """A typical value for a placeholder, whose real value is not known here."""
        if kind == "NAME":
            return f"{self._word('', 'first')} {self._word('', 'last')}"
        if kind == "EMAIL":
            return f"{self.fake.user_name()}@{self.fake.domain_name()}"
        if kind == "PHONE":
            return self.fake.phone_number()
        if kind == "IP":
            return self.fake.ipv4_public()
        if kind == "DOB":
            return self.fake.date_of_birth(minimum_age=18).isoformat()
        return self.fake.postcode()

    def _new_value(self, kind: str, canonical: str, original: str) -> str:
        if kind == "EMAIL":
            return self.email(canonical)
        if kind == "IP":
            return self.fake.ipv4_public() if ":" not in canonical else self.fake.ipv6()
        if kind == "DOB":
            return self.birth_date(original)
        return self.reshaped(original)

    def name(self, original: str, titled: bool) -> str:
        """Each word of a name swapped for a fake first name, surname or initial; particles stay."""
        words = list(_NAME_TOKEN.finditer(original))
        replacements = []
        for index, match in enumerate(words):
            word = match.group()
            if word.lower() in _PARTICLES and index < len(words) - 1:  # "J. de Vries" keeps its "de"
                continue
            role = "initial" if len(word) == 1 else "last" if titled or index else "first"
            fake = self._word(word, role)
            if word.isupper() and len(word) > 1:
                fake = fake.upper()
            elif word.islower():
                fake = fake.lower()
            replacements.append((match.start(), match.end(), fake))
        return _replace(original, replacements)

    def _word(self, word: str, role: str) -> str:
        key = word.casefold()
        if key and key in self.words:
            return self.words[key]
        draw = {
            "first": self.fake.first_name,
            "last": self.fake.last_name,
            "initial": self.fake.random_uppercase_letter,
        }[role]
        fake = draw()
        for _ in range(100):  # bounded: an example may have used up the 26 initials
            if fake.casefold() not in self.taken:
                break
            fake = draw()
        self.taken.add(fake.casefold())
        if key:
            self.words[key] = fake
        return fake

    def email(self, canonical: str) -> str:
        """A fake address; a local part made of the example's names is made of their fakes."""
        local, _, domain = canonical.rpartition("@")
        pieces = re.split(r"([._\-+])", local)
        if all(piece in self.words for piece in pieces[::2]):
            local = "".join(
                re.sub(r"[^a-z0-9]", "", self.words[piece].lower()) if index % 2 == 0 else piece
                for index, piece in enumerate(pieces)
            )
        else:
            local = self.fake.user_name()
        if domain not in self.domains:
            self.domains[domain] = self.fake.domain_name()
        return f"{local}@{self.domains[domain]}"

    def phone(self, canonical: str, original: str) -> str:
        """The number spelled as it was, its digits random but for the country code or trunk 0."""
        if canonical not in self.phones:
            international = original.lstrip("( ").startswith(("+", "00"))
            kept = 2 if international else 1 if canonical.startswith("0") else 0
            random_digits = "".join(str(self.random.randint(0, 9)) for _ in canonical[kept:])
            self.phones[canonical] = canonical[:kept] + random_digits
        # Spellings of one number differ at the front ("+44" or "0044", "(0)"), so fill from the end.
        fake = iter(reversed(self.phones[canonical]))
        trunk = {match.start() + 1 for match in re.finditer(r"\(0\)", original)}
        characters = list(original)
        for index in reversed(range(len(characters))):
            if characters[index].isdigit() and index not in trunk:
                characters[index] = next(fake, characters[index])
        return "".join(characters)

    def birth_date(self, original: str) -> str:
        """Another valid date in the same format: years, days and months drawn again."""

        def number(match: re.Match[str]) -> str:
            digits, suffix = match.group(1), match.group(2) or ""
            value = int(digits)
            if len(digits) == 4:
                new = self.random.randint(1940, 2005)
            elif value > 31:
                new = self.random.randint(40, 99)
            else:  # 1-12 reads as a day or a month; 13-31 only as a day
                new = self.random.randint(1, 12) if value <= 12 else self.random.randint(13, 28)
            if suffix.lower() in ("st", "nd", "rd", "th"):
                suffix = "th" if 11 <= new % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(new % 10, "th")
            return str(new).zfill(len(digits)) + suffix

        return re.sub(r"(\d+)(st|nd|rd|th)?", number, original)

    def reshaped(self, original: str) -> str:
        """Each letter and digit swapped for a random one of the same kind (postcodes)."""
        return "".join(
            str(self.random.randint(0, 9))
            if character.isdigit()
            else self.random.choice(string.ascii_uppercase)
            if character.isupper()
            else self.random.choice(string.ascii_lowercase)
            if character.isalpha()
            else character
            for character in original
        )


@dataclass(frozen=True)
class _Hit:
    """A detected span in the normalised text; higher priority wins an overlap."""

    type: str
    start: int
    end: int
    priority: int


_PRIORITY = {
    "URL_CREDENTIALS": 90,
    "SECRET": 80,
    "EMAIL": 70,
    "IBAN": 60,
    "CARD": 55,
    "IP": 50,
    "DOB": 47,
    "DATE_OR_TIME": 46,  # found only to shield a date's digits and month names; never redacted
    "PHONE": 45,
    "POSTCODE": 30,
    "NAME": 10,
}


def _hit(kind: str, start: int, end: int, priority: int | None = None) -> _Hit:
    return _Hit(kind, start, end, _PRIORITY[kind] if priority is None else priority)


@dataclass(frozen=True)
class _Found:
    """A detected value: its span in the original text and the form two spellings of it share."""

    type: str
    start: int
    end: int
    canonical: str


def _redact_one(text: str, numbering: _Numbering) -> tuple[str, list[Finding]]:
    findings = []
    for found in _find(text):
        placeholder = numbering.placeholder(found.type, found.canonical, text[found.start : found.end])
        findings.append(Finding(found.type, found.start, found.end, placeholder))
    return _replace(text, [(f.start, f.end, f.placeholder) for f in findings]), findings


def _find(text: str) -> list[_Found]:
    """Every personal or secret value in ``text``, in order; any failure is a ``RedactionError``."""
    if not isinstance(text, str):
        raise RedactionError(f"Redaction needs text, not {type(text).__name__}; nothing was sent.")
    try:
        normalised = _normalise(text)
        hits = _resolve([hit for detector in _DETECTORS for hit in detector(normalised.text)])
        found = []
        for hit in hits:
            if hit.type in TYPES:
                canonical = _canonical(hit.type, normalised.text[hit.start : hit.end])
                found.append(_Found(hit.type, *normalised.original_span(hit.start, hit.end), canonical))
        return found
    except RedactionError:
        raise
    except Exception as error:
        raise RedactionError(
            f"Could not check the text for personal data ({type(error).__name__}: {error}); nothing was "
            "sent. Report this as a bug; until it is fixed, leave the text out of the request."
        ) from error


def _replace(text: str, replacements: list[tuple[int, int, str]]) -> str:
    """``text`` with each (start, end) span, in order and not overlapping, replaced."""
    pieces: list[str] = []
    position = 0
    for start, end, replacement in replacements:
        pieces += [text[position:start], replacement]
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def _resolve(hits: list[_Hit]) -> list[_Hit]:
    """Keep the strongest of overlapping hits: higher priority first, then the longer span."""
    chosen: list[_Hit] = []
    for hit in sorted(hits, key=lambda h: (-h.priority, h.start - h.end, h.start)):
        if all(hit.end <= other.start or hit.start >= other.end for other in chosen):
            chosen.append(hit)
    return sorted(chosen, key=lambda h: h.start)


def _canonical(kind: str, value: str) -> str:
    """The form under which two spellings of one value share a placeholder."""
    if kind in ("PHONE", "CARD"):
        digits = re.sub(r"\D", "", value.replace("(0)", ""))
        return digits[2:] if kind == "PHONE" and value.lstrip().startswith("00") else digits
    if kind == "IBAN":
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    if kind == "EMAIL":
        value = re.sub(r"[\[({<]\s*at\s*[\])}>]", "@", value, flags=re.IGNORECASE)
        value = re.sub(r"[\[({<]\s*dot\s*[\])}>]", ".", value, flags=re.IGNORECASE)
        return re.sub(r"\s", "", value).lower()
    if kind == "NAME":
        return " ".join(value.split()).casefold()
    return re.sub(r"\s", "", value).lower() if kind in ("IP", "POSTCODE", "DOB") else re.sub(r"\s", "", value)


# --- normalisation ------------------------------------------------------------------------------------

# Typographic dashes and apostrophes read as their ASCII forms, one character for one.
_PUNCTUATION = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63"), "-") | {
    ord("\u2018"): "'",
    ord("\u2019"): "'",
}


@dataclass(frozen=True)
class _Normalised:
    """The text detection runs on, with each of its characters' span in the original."""

    text: str
    starts: Sequence[int]
    ends: Sequence[int]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        return self.starts[start], self.ends[end - 1]


_ASCII_RUN = re.compile(r"[\x00-\x7f]+")


def _normalise(text: str) -> _Normalised:
    if text.isascii():
        return _Normalised(text, range(len(text)), range(1, len(text) + 1))
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    index = 0
    while index < len(text):
        ascii_run = _ASCII_RUN.match(text, index)
        if ascii_run:  # copied as it is, but its last character may take a combining mark that follows
            stop = ascii_run.end()
            if stop < len(text) and unicodedata.combining(text[stop]):
                stop -= 1
            if stop > index:
                pieces.append(text[index:stop])
                starts.extend(range(index, stop))
                ends.extend(range(index + 1, stop + 1))
                index = stop
                continue
        stop = index + 1
        while stop < len(text) and unicodedata.combining(text[stop]):
            stop += 1
        if unicodedata.category(text[index]) == "Cf":  # zero-width spaces, soft hyphens, BOMs
            piece = ""
        else:
            piece = unicodedata.normalize("NFKC", text[index:stop]).translate(_PUNCTUATION)
        pieces.append(piece)
        starts += [index] * len(piece)
        ends += [stop] * len(piece)
        index = stop
    return _Normalised("".join(pieces), starts, ends)


# --- secrets and credentials --------------------------------------------------------------------------

_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
# The password may hold "#" or "?" when pasted unencoded.
_URL_CREDENTIALS = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s/?#@:]*:[^\s/@]+@[^\s/?#]+[^\s]*")
_TOKEN_CHARS = r"A-Za-z0-9_\-"
_PREFIXED_TOKEN = re.compile(
    r"(?<![\w\-])(?:"
    r"sk-(?:proj-|ant-(?:api\d\d-|admin\d\d-)?|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}|xapp-[A-Za-z0-9\-]{10,}"
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Za-z0-9])"
    r"|AIza[A-Za-z0-9_\-]{35}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|npm_[A-Za-z0-9]{36}"
    r"|SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"
    r"|ya29\.[A-Za-z0-9_\-]{20,}"
    r"|eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"
    r")"
)
# The start of a known token that a terminal or an e-mail client wrapped onto the next line.
_WRAPPED_TOKEN = re.compile(
    r"(?<![\w\-])(?:sk-|sk_live_|gh[pousr]_|github_pat_|xox[abposr]-|glpat-|hf_|AKIA|AIza|eyJ)"
    r"[A-Za-z0-9_\-.]{6,}(?=[ \t]*\r?\n)"
)
_AUTH_HEADER = re.compile(r"\b(?:Bearer|Basic|Token)\s+([A-Za-z0-9._~+/\-]{16,}=*)")
_PASSWORD_WORDS = (
    r"password|passwd|pwd|passcode|passwort|kennwort|mot de passe|mdp|contraseña|clave|wachtwoord"
)
_KEY_WORDS = (
    r"api[_\- ]?key|api[_\- ]?secret|secret[_\- ]?key|client[_\- ]?secret|access[_\- ]?key|access[_\- ]?token"
    r"|auth[_\- ]?token|refresh[_\- ]?token|private[_\- ]?key|token|secret|api-schlüssel|clé api|clave api"
)
_ASSIGNED_SECRET = re.compile(
    rf"(?i)\b(?P<word>{_PASSWORD_WORDS}|{_KEY_WORDS})\b[\"']?"
    r"(?:\s*(?P<sign>[:=]|=>)|(?:\s+[\w\-]+){0,4}?\s+(?:is|ist|est|es|lautet|luidt|was|war|era|était)\b)?"
    r"\s*[\"'`]?(?P<value>[^\s\"'`,;]{4,})"
)
_CANDIDATE_TOKEN = re.compile(
    rf"(?<![{_TOKEN_CHARS}+/.])[A-Za-z0-9_\-+/]{{24,}}={{0,2}}(?![{_TOKEN_CHARS}+/=])"
)
_CONTINUATION = re.compile(r"[ \t]*\r?\n[ \t]*([A-Za-z0-9_\-+/=.]{4,})(?=\s|$)")


def _secrets(text: str) -> Iterator[_Hit]:
    for match in _PEM.finditer(text):
        yield _hit("SECRET", match.start(), match.end(), priority=100)
    for match in _URL_CREDENTIALS.finditer(text):
        yield _hit("URL_CREDENTIALS", match.start(), _strip_trailing_punctuation(text, match.end()))
    for match in _PREFIXED_TOKEN.finditer(text):
        yield _hit("SECRET", match.start(), _continued(text, match.end()))
    for match in _WRAPPED_TOKEN.finditer(text):
        end = _continued(text, match.end())
        if end > match.end():
            yield _hit("SECRET", match.start(), end)
    for match in _AUTH_HEADER.finditer(text):
        if _looks_random(match.group(1)) or match.group(1).startswith("eyJ"):
            yield _hit("SECRET", match.start(1), _continued(text, match.end(1)))
    for match in _ASSIGNED_SECRET.finditer(text):
        value = match.group("value")
        is_password = re.fullmatch(_PASSWORD_WORDS, match.group("word"), re.IGNORECASE) is not None
        explicit = match.group("sign") is not None
        has_symbol = re.search(r"[^A-Za-z]", value) is not None
        if "://" in value:
            continue
        if (is_password and (explicit or has_symbol)) or (len(value) >= 8 and _looks_random(value)):
            end = _strip_trailing_punctuation(text, match.end("value"))
            yield _hit("SECRET", match.start("value"), end)
    for match in _CANDIDATE_TOKEN.finditer(text):
        if _looks_random(match.group()):
            yield _hit("SECRET", match.start(), _continued(text, match.end()))


def _looks_random(token: str) -> bool:
    """A key or token rather than a word, a path or an identifier in code.

    Random strings switch between lower case, upper case and digits often and have high entropy;
    camelCase names and hex hashes (commit IDs) do not, or use too few classes.
    """
    core = re.sub(r"[^A-Za-z0-9]", "", token)
    if len(core) < 16:
        return False
    classes = [("l" if c.islower() else "u" if c.isupper() else "d") for c in core]
    kinds = set(classes)
    if re.fullmatch(r"[0-9a-f]+|[0-9A-F]+", core):
        return False
    if len(kinds) < 2 or (len(kinds) == 2 and "d" not in kinds):
        return False
    words = sum(len(word) for word in re.findall(r"[A-Z]?[a-z]{2,}", core) if len(word) >= 3)
    if words / len(core) >= 0.5:  # mostly words: an identifier in code, not a key
        return False
    switches = sum(a != b for a, b in itertools.pairwise(classes)) / (len(core) - 1)
    counts = Counter(core)
    entropy = -sum(n / len(core) * math.log2(n / len(core)) for n in counts.values())
    threshold = 0.3 if len(kinds) == 3 else 0.35
    return switches >= threshold and entropy >= 3.5


def _continued(text: str, end: int) -> int:
    """Extend a token over a line break when the next line carries on with more random characters."""
    match = _CONTINUATION.match(text, end)
    if match and _looks_like_tail(match.group(1)):
        return match.end(1)
    return end


def _looks_like_tail(piece: str) -> bool:
    has_digit = any(c.isdigit() for c in piece)
    has_letter = any(c.isalpha() for c in piece)
    mixed_case = any(c.isupper() for c in piece[1:]) and any(c.islower() for c in piece)
    return (has_digit and has_letter) or mixed_case


def _strip_trailing_punctuation(text: str, end: int) -> int:
    """Leave out the punctuation that ends a sentence or a bracket; "!" and "?" often end passwords."""
    while end > 0 and text[end - 1] in ".,;:)]}>'\"":
        end -= 1
    return end


# --- e-mail addresses ---------------------------------------------------------------------------------

_AT = r"(?:[ \t]?\n?[ \t]?@[ \t]?\n?[ \t]?|\s*[\[({<]\s*at\s*[\])}>]\s*)"
_DOT = r"(?:\.\n?|\s*[\[({<]\s*dot\s*[\])}>]\s*)"
_EMAIL = re.compile(
    rf"(?<![\w.+\-])[\w.%+\-]*\w{_AT}\w[\w\-]*(?:{_DOT}[\w\-]+)*{_DOT}[A-Za-z]{{2,}}(?![\w\-])",
    re.IGNORECASE,
)


def _emails(text: str) -> Iterator[_Hit]:
    for match in _EMAIL.finditer(text):
        yield _hit("EMAIL", match.start(), match.end())


# --- IBANs and payment cards --------------------------------------------------------------------------

_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
_IBAN_GAP = re.compile(r"[ \t]*\r?\n[ \t]*|[ \t]|-")
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])(?:[A-Z]{2} ?|[a-z]{2})\d{2}")


def iban_is_valid(candidate: str) -> bool:
    """The ISO 13616 check: right length for the country, and mod-97 of the rearranged number is 1."""
    iban = re.sub(r"[\s\-]", "", candidate).upper()
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _ibans(text: str) -> Iterator[_Hit]:
    for match in _IBAN_START.finditer(text):
        country = match.group()[:2].upper()
        length = _IBAN_LENGTHS.get(country)
        if length is None:
            continue
        characters = re.sub(r"\s", "", match.group()).upper()
        position = match.end()
        while len(characters) < length and position < len(text):
            char = text[position]
            if char.isascii() and char.isalnum():
                characters += char.upper()
                position += 1
                continue
            gap = _IBAN_GAP.match(text, position)
            after = gap.end() if gap else position
            if gap and after < len(text) and text[after].isascii() and text[after].isalnum():
                position = after
                continue
            break
        followed_by_more = position < len(text) and text[position].isalnum()
        if len(characters) == length and not followed_by_more and iban_is_valid(characters):
            yield _hit("IBAN", match.start(), position)


def luhn_is_valid(number: str) -> bool:
    """The Luhn checksum that every payment card number satisfies."""
    digits = [int(d) for d in re.sub(r"\D", "", number)]
    if not digits:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


_DIGIT_RUN = re.compile(
    r"(?<![A-Za-z0-9])\d(?:(?:[ \t]?[\-.][ \t]?|[ \t]?\r?\n[ \t]?|[ \t])?\d)*(?![A-Za-z0-9])"
)
# Issuer prefixes and the lengths their numbers come in (Visa, Mastercard, Amex, Diners, Discover, JCB,
# UnionPay, Maestro, UATP).
_CARD_LENGTHS = (
    (re.compile(r"4"), (13, 16, 19)),
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), (16,)),
    (re.compile(r"3[47]"), (15,)),
    (re.compile(r"3(?:0[0-5]|[689])"), (14, 15, 16, 17, 18, 19)),
    (re.compile(r"6011|64[4-9]|65|62|35(?:2[89]|[3-8]\d)"), (16, 17, 18, 19)),
    (re.compile(r"5[06-9]|6"), (13, 14, 15, 16, 17, 18, 19)),
    (re.compile(r"1"), (15,)),
)


def _card_shape_is_valid(digits: str) -> bool:
    prefix_lengths = next((lengths for prefix, lengths in _CARD_LENGTHS if prefix.match(digits)), ())
    return len(digits) in prefix_lengths and luhn_is_valid(digits)


def _cards(text: str) -> Iterator[_Hit]:
    """Card numbers are 13 to 19 digits, Luhn-valid, with an issuer prefix; groups may be separated."""
    for match in _DIGIT_RUN.finditer(text):
        positions = [match.start() + i for i, c in enumerate(match.group()) if c.isdigit()]
        if len(positions) < 13:
            continue
        digits = "".join(text[p] for p in positions)
        group_starts = {0} | {i for i in range(1, len(positions)) if positions[i] - positions[i - 1] > 1}
        group_ends = group_starts | {len(positions)}
        index = 0
        while index <= len(positions) - 13:
            found = None
            if index in group_starts:
                for length in range(19, 12, -1):
                    stop = index + length
                    if stop in group_ends and _card_shape_is_valid(digits[index:stop]):
                        found = stop
                        break
            if found is None:
                index += 1
                continue
            yield _hit("CARD", positions[index], positions[found - 1] + 1)
            index = found


# --- IP addresses -------------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}(?:\.\n?|\[\.\]|\(\.\))){{3}}{_OCTET}(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}|:)?:(?:[0-9A-Fa-f]{0,4}:){1,7}"
    r"(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?:%[\w]+)?(?![\w:])"
)
_VERSION_CUE = re.compile(
    r"(?i)(?:\bv|version|\bver\.?|build|release|rev\.?|firmware|update|section|chapter|clause|paragraph"
    r"|§|abschnitt|kapitel|article|art\.|step|figure|fig\.|table|item)\s*$"
)


def _ips(text: str) -> Iterator[_Hit]:
    import ipaddress

    for match in _IPV4.finditer(text):
        if not _VERSION_CUE.search(text[max(0, match.start() - 14) : match.start()]):
            yield _hit("IP", match.start(), match.end())
    for match in _IPV6.finditer(text):
        candidate = match.group().split("%")[0]
        if not re.search(r"\d", candidate) and candidate.count(":") < 4:
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield _hit("IP", match.start(), match.end())


# --- phone numbers ------------------------------------------------------------------------------------

_PHONE_SEPARATOR = r"(?:[ \t]?[\-./][ \t]?|[ \t]?\r?\n[ \t]?|[ \t]?\(0\)[ \t]?|\)[ \t]?|[ \t]?\(|[ \t])"
_PHONE = re.compile(rf"(?<![\w+\-./])(?:\+[ \t]?|\(\+?)?\d+(?:{_PHONE_SEPARATOR}\d+)*\)?(?![\w])")
_PHONE_CUE = re.compile(
    r"(?i)(?:phone|tel|telephone|call|ring|mobile|mob|cell|sms|text me|whatsapp|signal|fax|contact|reach"
    r"|numbers?|no\.|nr\.?|num|telefon|handy|mobil|rufnummer|ruf|anrufen|nummer[ns]?|téléphone|tél"
    r"|portable|appel(?:le|ez)?|numéros?|teléfonos?|telefono|tlf|móvil|movil|celular|llámame|llama|números?"
    r"|telefoon|mobiel|bel|gsm)\b[^\n\d]{0,25}$"
)
_NOT_PHONE_CUE = re.compile(
    r"(?i)(?:order|invoice|ref|reference|ticket|tracking|account|acct|customer|case|id|isbn|serial|sku"
    r"|batch|lot|bestell\w*|rechnung\w*|kunden\w*|auftrag\w*|commande|facture|dossier|pedido|factura"
    r"|bestelling|factuur|klantnummer|#|n°|nº)[^\n]{0,12}$"
)
_DATE_LIKE = re.compile(r"\d{1,4}\s?([./\-])\s?\d{1,2}\s?\1\s?\d{1,4}")
_US_SHAPE = re.compile(r"\(?\d{3}\)?[ .\-]?\d{3}[ .\-]\d{4}")


def _phones(text: str) -> Iterator[_Hit]:
    for match in _PHONE.finditer(text):
        value = match.group()
        end = match.end()
        if value.endswith(")") and value.count(")") > value.count("("):  # "(+49 151 23456789)"
            value, end = value[:-1], end - 1
        if value.startswith("(") and value.count("(") > value.count(")"):
            continue
        digits = re.sub(r"\D", "", value.replace("(0)", ""))
        if not 7 <= len(digits) <= 15 or _DATE_LIKE.fullmatch(value):
            continue
        before = text[max(0, match.start() - 40) : match.start()]
        international = value.startswith(("+", "(+")) or (value.startswith("00") and len(digits) >= 10)
        national = value.startswith(("0", "(")) and len(digits) >= 9 and not value.startswith("00")
        if _NOT_PHONE_CUE.search(before) and not international:
            continue
        if international or national or _US_SHAPE.fullmatch(value) or _PHONE_CUE.search(before):
            yield _hit("PHONE", match.start(), end)


# --- dates, times and dates of birth ------------------------------------------------------------------

_MONTHS = (
    r"january|february|march|april|may|june|july|august|september|october|november|december"
    r"|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec"
    r"|januar|jänner|februar|märz|maerz|mai|juni|juli|oktober|okt|dezember|dez"
    r"|janvier|février|fevrier|mars|avril|juin|juillet|août|aout|septembre|octobre|novembre|décembre|decembre"
    r"|janv|févr|fevr|avr|juil|déc"
    r"|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre"
    r"|ene|abr|ago|dic"
    r"|januari|februari|maart|mei|augustus"
)
_DAY = r"(?:[0-3]?\d)(?:st|nd|rd|th|er|ème|º|\.)?"
_DATE = re.compile(
    rf"(?i)(?<![\w.])(?:"
    rf"\d{{1,2}}\s?[./\-]\s?\d{{1,2}}\s?[./\-]\s?(?:\d{{4}}|\d{{2}})"
    rf"|\d{{4}}\s?[./\-]\s?\d{{1,2}}\s?[./\-]\s?\d{{1,2}}"
    rf"|{_DAY}\s+(?:of\s+|de\s+)?(?:{_MONTHS})\.?,?\s+(?:de\s+|del\s+)?\d{{4}}"
    rf"|(?:{_MONTHS})\.?\s+{_DAY},?\s+\d{{4}}"
    rf"|\d{{4}}年\s?\d{{1,2}}月\s?\d{{1,2}}日"
    rf")(?![\w])"
)
_BIRTH_CUE = re.compile(
    r"(?i)(?:\bborn\b|\bb\.|\bd\.?o\.?b\b\.?|date\s+of\s+birth|birth\s*date|birthday|\bgeboren\b|\bgeb\."
    r"|geburtsdatum|geburtstag|\bn[ée]e?\b|date\s+de\s+naissance|naissance|\bnacid[oa]\b|nacimiento"
    r"|\bnac\.|cumpleaños|geboortedatum|verjaardag|生年月日)"
)
# German and Dutch put the cue after the date: "am 12.05.1972 in Köln geboren".
_BIRTH_CUE_AFTER = re.compile(r"(?i)[^.!?\n]{0,25}?\b(?:geboren|born|n[ée]e?|nacid[oa])\b")


_WEEKDAYS = (
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues|tue|wed|thurs|thur|thu|fri|sat|sun"
    r"|montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|lundi|mardi|mercredi|jeudi|vendredi"
    r"|samedi|dimanche|lunes|martes|miércoles|jueves|viernes|sábado|domingo|maandag|dinsdag|woensdag"
    r"|donderdag|vrijdag|zaterdag|zondag"
)
_TIME = r"\d{1,2}(?::\d{2}){1,2}(?:\s?[ap]\.?m\b\.?)?|\d{1,2}\s?[ap]\.?m\b\.?|\d{1,2}h\d{2}"
# Calendar dates and clock times, which hold the digit runs of phone numbers and the month names that
# are also first names ("Jun 9 2026", "May 4"): found so that no lower-priority detector takes them.
_DATE_OR_TIME = re.compile(
    rf"(?i)(?<![\w.])(?:"
    rf"\d{{1,2}}\s?([./\-])\s?\d{{1,2}}\s?\1\s?(?:\d{{4}}|\d{{2}})"
    rf"|\d{{4}}([./\-])\d{{1,2}}\2\d{{1,2}}(?:T\d{{2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?(?:Z|[+\-]\d{{2}}:?\d{{2}})?)?"
    rf"|(?:{_MONTHS})\.?\s+{_DAY}(?:,?\s+\d{{4}})?"
    rf"|{_DAY}\s+(?:of\s+|de\s+)?(?:{_MONTHS})\.?(?:,?\s+(?:de\s+)?\d{{4}})?"
    rf"|(?:{_MONTHS})\.?,?\s+\d{{4}}"
    rf"|(?:{_WEEKDAYS})\.?,?\s+(?:{_TIME})"
    rf"|{_TIME}"
    rf")(?![\w]|[./\-:]\d)"
)


def _dates_and_times(text: str) -> Iterator[_Hit]:
    for match in _DATE_OR_TIME.finditer(text):
        yield _hit("DATE_OR_TIME", match.start(), match.end())


def _births(text: str) -> Iterator[_Hit]:
    for match in _DATE.finditer(text):
        before = text[max(0, match.start() - 40) : match.start()]
        cues = list(_BIRTH_CUE.finditer(before))
        between = before[cues[-1].end() :] if cues else ""
        cue_before = bool(cues) and between.count("\n") <= 1 and "." not in between.strip()
        if cue_before or _BIRTH_CUE_AFTER.match(text, match.end()):
            yield _hit("DOB", match.start(), match.end())


# --- postcodes ----------------------------------------------------------------------------------------

_UK_POSTCODE = re.compile(
    r"(?<![\w])(?:GIR ?0AA|[A-PR-UWYZ](?:\d[A-HJKPSTUW\d]?|[A-HK-Y]\d[ABEHMNPRV-Y\d]?)"
    r" ?\d[ABD-HJLNP-UW-Z]{2})(?![\w])"
)
_CANADIAN_POSTCODE = re.compile(
    r"(?<![\w])[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d(?![\w])"
)
_DUTCH_POSTCODE = re.compile(r"(?<![\w])[1-9]\d{3} ?(?!SA|SD|SS)[A-Z]{2}(?![\w])")
_US_STATES = (
    r"AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY"
    r"|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR"
)
_US_ZIP = re.compile(
    rf"(?:\b(?:{_US_STATES})\.?,?[ \t]+|\b(?i:zip(?:[ \-]?code)?)\b[ \t]*:?[ \t]*)"
    r"(\d{5}(?:-\d{4})?)(?![\w\-])"
)
_FIVE_DIGIT_POSTCODE = re.compile(
    r"(?<![\w\-])(?:[DFE]-)?(\d{5})(?![\w\-])(?:(?:[ \t]+|[ \t]*\n[ \t]*)([^\W\d_][\w\-]*))?"
)
_ADDRESS_CUE = re.compile(
    r"(?i)(?:str\.|straße|strasse|weg\b|allee|platz|gasse|ring\b|damm\b|ufer\b|rue\b|avenue|\bav\.|\bbd\b"
    r"|boulevard|\bplace\b|chemin|impasse|allée|quai\b|calle\b|\bc/|avenida|avda|plaza|paseo|carrer"
    r"|straat|laan\b|plein\b|gracht|kade\b|street|road|lane|drive|address|adresse|anschrift|dirección"
    r"|direccion|adres|\bplz\b|postleitzahl|code postal|\bcp\b|código postal|codigo postal|postcode"
    r"|postal code|wohnhaft|wohne in|habite|vivo en|woon)"
)
_POSTCODE_WORD_CUE = re.compile(
    r"(?i)(?:postcode|post code|postal code|zip code|plz|postleitzahl|code postal|cp|código postal)"
    r"(?:\W{0,3}|\s+(?:is|ist|est|es)\s+)$"
)
_NOT_POSTCODE_AFTER = _words("AI EU US UK PM AM TV PC ID OK HR IT QA VP UN")


def _postcodes(text: str) -> Iterator[_Hit]:
    for pattern in (_UK_POSTCODE, _CANADIAN_POSTCODE):
        for match in pattern.finditer(text):
            yield _hit("POSTCODE", match.start(), match.end())
    for match in _DUTCH_POSTCODE.finditer(text):
        before = text[max(0, match.start() - 60) : match.start()]
        city_follows = re.match(r"[ \t]+[A-Z][a-z]", text[match.end() : match.end() + 3]) is not None
        in_address = _ADDRESS_CUE.search(before) or re.search(r"\d[a-z]?,[ \t]*$", before)
        if match.group()[-2:] in _NOT_POSTCODE_AFTER:
            continue
        if _POSTCODE_WORD_CUE.search(before) or (city_follows and in_address):
            yield _hit("POSTCODE", match.start(), match.end())
    for match in _US_ZIP.finditer(text):
        yield _hit("POSTCODE", match.start(1), match.end(1))
    cities = _name_data().cities
    for match in _FIVE_DIGIT_POSTCODE.finditer(text):
        before = text[max(0, match.start() - 60) : match.start()]
        city = match.group(2) or ""
        city_follows = city[:1].isupper() and (_ADDRESS_CUE.search(before) or city in cities)
        if city_follows or _POSTCODE_WORD_CUE.search(before):
            yield _hit("POSTCODE", match.start(1), match.end(1))


# --- person names -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NameData:
    first: frozenset[str]  # every first name Faker knows, in any locale
    popularity: dict[str, int]  # how many national lists (not Faker's long US list) hold a first name
    last: frozenset[str]
    common: frozenset[str]  # ordinary words in six languages, lower case
    places: frozenset[str]
    cities: frozenset[str]


@lru_cache(maxsize=1)
def _name_data() -> _NameData:
    """Faker's name, word and place lists, loaded once (about 0.1 s)."""
    import importlib
    import pkgutil

    try:
        import faker.providers.person as person_providers
    except ImportError as error:
        raise RedactionError(
            "The name lists for redaction are missing (the faker package is not installed); nothing was "
            "sent. Reinstall Understudy, or run: pip install faker"
        ) from error

    def strings(value: object) -> list[str]:
        return [v for v in value if isinstance(v, str)] if isinstance(value, (list, tuple, dict)) else []

    first: set[str] = set()
    last: set[str] = set()
    popularity: Counter[str] = Counter()
    for module in pkgutil.iter_modules(person_providers.__path__):
        provider = importlib.import_module(f"faker.providers.person.{module.name}").Provider
        locale_first: set[str] = set()
        for attribute in dir(provider):
            if "kana" in attribute or not attribute.endswith(("names", "names_male", "names_female")):
                continue
            names = [part for name in strings(getattr(provider, attribute)) for part in name.split()]
            if attribute.startswith(("first_", "middle_")):
                locale_first.update(names)
            elif "last_" in attribute:
                last.update(names)
        first |= locale_first
        if module.name != "en":  # the generic list mixes in words (River, Orange) and places (London)
            popularity.update(locale_first)
    common = set(_STOP_WORDS)
    for locale in ("en_US", "de_DE", "fr_FR", "es_ES", "nl_NL", "it_IT"):
        words = importlib.import_module(f"faker.providers.lorem.{locale}").Provider.word_list
        # German capitalises nouns; elsewhere a capitalised lorem entry is a name, not a common word.
        common.update(w.lower() for w in words if locale == "de_DE" or w[:1].islower())
    places: set[str] = set(_PLACES)
    cities: set[str] = set(_PLACES)
    for locale in ("en_US", "de_DE", "fr_FR", "es_ES", "nl_NL"):
        provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
        for attribute in ("countries", "states", "provinces", "regions"):
            places.update(strings(getattr(provider, attribute, None)))
        cities.update(strings(getattr(provider, "cities", None)))
    return _NameData(
        first=frozenset(first),
        popularity=dict(popularity),
        last=frozenset(last),
        common=frozenset(common),
        places=frozenset(places | cities),
        cities=frozenset(cities),
    )


_STOP_WORDS = _words(
    """
    the a an and or but if then so please thanks thank hi hello hey dear yes no ok okay i i'm i'll i've i'd
    we you he she they it it's this that these those my your our their his her what when where who whom
    why how which can could would should will shall may might must do does did is are was were be been
    also just not all any some every each there here today tomorrow yesterday tonight morning evening
    afternoon note re fwd fw subject sent from to cc bcc attn regards best kind warm cheers sincerely
    yours love team everyone folks guys sir madam customer support admin hr it as at by for in of on
    with about after before since until during via per let let's sure great good nice well hope happy
    meeting call update project invoice order version release report agenda minutes summary total price
    der die das den dem des ein eine einen einem einer und oder aber bitte danke hallo liebe lieber sehr
    geehrte geehrter geehrtes ich du er sie es wir ihr mein meine dein deine ihre sein seine wie was wer
    wo wann warum heute morgen gestern grüße gruß viele beste freundlichen freundliche mit von zu für am
    im ist sind hat haben kann können wird werden guten tag moin servus ja nein leider anbei hier
    schöne schönen zusammen
    le la les un une des du de et ou mais merci bonjour bonsoir salut cher chère je tu il elle nous vous
    ils elles mon ma mes ton ta votre vos notre nos son sa ses ce cette ces qui que quoi où quand
    comment pourquoi aujourd'hui demain hier cordialement bien voici voilà oui non est c'est j'ai pour
    avec sur dans tous toutes
    el los las unos unas y o pero gracias hola buenos buenas días tardes noches querido querida estimado
    estimada yo tú él ella nosotros vosotros ellos ellas mi mis tu su sus nuestro qué quién dónde cuándo
    cómo por para con hoy mañana ayer saludos atentamente sí es está
    het een en of maar dank bedankt hoi beste geachte ik jij je u hij zij ze wij jullie mijn jouw uw
    zijn haar ons onze wat wie waar wanneer waarom hoe vandaag gisteren groeten groet met vriendelijke
    van voor op graag alvast iedereen allemaal
    monday tuesday wednesday thursday friday saturday sunday montag dienstag mittwoch donnerstag freitag
    samstag sonntag lundi mardi mercredi jeudi vendredi samedi dimanche lunes martes miércoles jueves
    viernes sábado domingo maandag dinsdag woensdag donderdag vrijdag zaterdag zondag
    january february march april may june july august september october november december januar
    februar märz mai juni juli oktober dezember janvier février mars avril juin juillet août septembre
    octobre novembre décembre enero febrero marzo abril mayo junio julio agosto septiembre octubre
    noviembre diciembre januari februari maart mei augustus
    christmas easter weihnachten ostern noël pâques navidad kerstmis pasen
    groetjes hartelijke herzliche herzlichen besten bises amitiés abrazos besos xoxo ciao
    """
)
_TITLES = _words(
    """
    mr mrs ms miss mx dr prof professor sir dame lord lady herr herrn frau fräulein hr mme mlle monsieur
    madame mademoiselle sr sra srta señor señora señorita don doña dña dhr mevr mevrouw meneer heer mej dott
    sig signor signora signorina
    doctor doktor docteur
    """
)
_NOT_PERSON = _words(
    """
    inc ltd llc plc gmbh ag kg sa sas sarl srl bv nv corp corporation company co university universität
    université universidad universiteit college school hospital klinikum clinic bank hotel restaurant
    street st road rd avenue ave lane ln drive boulevard blvd straße strasse str platz weg gasse allee rue
    place calle avenida plaza paseo straat laan plein gracht kade square airport station bahnhof gare
    estación museum musée museo church kirche cathedral group gruppe groupe grupo foundation stiftung
    institute institut instituto center centre centrum zentrum office department ministry council city
    county state republic kingdom united new san santa santo saint sankt mount lake port fort north south
    east west upper lower great los las google microsoft apple amazon windows linux android iphone ipad
    macbook excel teams slack zoom github gitlab chrome firefox safari docker azure aws series edition
    """
)
_PLACES = _words(
    """
    London Paris Berlin Madrid Rome Roma Vienna Wien Amsterdam Brussels Bruxelles Brussel Zurich Zürich
    Geneva Genève Lisbon Lisboa Dublin Florence Firenze Milan Milano Munich München Köln Cologne Hamburg
    Frankfurt Stuttgart Düsseldorf Dresden Leipzig Lyon Marseille Toulouse Nice Nantes Bordeaux Lille
    Barcelona Sevilla Seville Valencia Bilbao Málaga Rotterdam Utrecht Eindhoven Groningen Antwerp
    Antwerpen Ghent Gent Sydney Melbourne Austin Dallas Houston Phoenix Denver Boston Chicago Seattle
    Portland Orlando Atlanta Savannah Manchester Liverpool Leeds Bristol Oxford Cambridge Edinburgh
    Glasgow Cardiff Belfast Toronto Ottawa Montreal Montréal Vancouver Quebec Québec Tokyo Beijing
    Shanghai Mumbai Delhi Cairo Lagos Nairobi Europe Africa Asia America Americas Oceania
    """
)
_TITLE_BEFORE = re.compile(rf"(?i)(?:\b(?:{'|'.join(sorted(_TITLES))})\.?|\bM\.)[ \t]*$")
# Surnames that also end place names ("Hyde Park", "King's Cross"): not enough on their own.
_PLACE_WORDS = _words(
    "park gardens garden hill bridge tower palace castle hall house court lake river valley beach bay island"
    " forest wood woods field fields green cross gate market station point heights"
)
_PARTICLES = _words("van von de der den du da di le la del della dos das ten ter bin al y zu vom")
_STRONG_CUE = re.compile(
    r"(?i)(?:my name is|my name's|i am called|call me|signed|ich heiße|ich heisse|mein name ist"
    r"|je m'appelle|mon nom est|me llamo|mi nombre es|ik heet|mijn naam is|"
    r"(?:\b(?:full |first |last |sur|fore|given |family |user|customer |patient |client )?name|\bnom|prénom"
    r"|\bnombre|apellidos?|vorname|nachname|\bnaam|voornaam|achternaam|\bfrom|\bto|\bcc|\bbcc|\bvon|\ban"
    r"|\bde|\bà|\bpara|\bvan|\baan|contact|kontakt|attn|z\.\s?hd\.?|patient|client|customer|employee"
    r"|applicant|author|sender|recipient|signed by|passenger|guest|tenant|mieter|inhaber|titulaire"
    r"|titular|cardholder|account holder|kontoinhaber)\s*:)[ \t]*$"
)
# Greetings, introductions and closings: what follows is a name even when no list knows it.
_GREETING_CUE = re.compile(
    r"(?i)(?:\b(?:dear|hi|hello|hey|hallo|liebe|lieber|servus|moin|bonjour|salut|coucou|cher|chère|hola"
    r"|querid[oa]|estimad[oa]|beste|geachte|hoi|ciao|i'm|i am|this is|it's|ich bin|hier ist|je suis"
    r"|c'est|moi c'est|soy|aquí|ik ben|met|thanks|thank you|regards|best|cheers|sincerely|yours|love"
    r"|grüße|gruß|grüßen|mfg|lg|vg|danke|cordialement|vous|amitiés|bises|merci|saludos|saludo"
    r"|atentamente|gracias|abrazos|groeten|groet|groetjes|bedankt)"
    r"|--)[ \t]*[,.!:]?[ \t]*\r?\n?[ \t]*$"
)
# Words that often precede a person but also a product or a place: only names the lists know count.
_RELATION_CUE = re.compile(r"(?i)\b(?:with|by|from|ask|tell|told|cc|mit|avec|con|met)[ \t]+$")
_ARTICLE_BEFORE = re.compile(
    r"(?i)\b(?:the|a|an|this|that|our|your|der|die|das|dem|den|des|ein|eine|einem|einen|einer|im|am|zum"
    r"|zur|vom|beim|ins|le|la|les|un|une|du|au|aux|el|los|las|una|del|al|het|een)[ \t]+$"
)
_CHAIN = re.compile(r"(?i)^\s*(?:,|&|and|und|et|y|e|en|or|oder|ou|o|/)\s*(?:,|and|und|et|y|en)?\s*$")
_NAME_TOKEN = re.compile(r"[^\W\d_]+(?:['\-](?!s\b)[^\W\d_]+)*")  # "Jenny's" reads as Jenny


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    word: str


def _names(text: str) -> Iterator[_Hit]:
    data = _name_data()
    dates = [(hit.start, hit.end) for hit in _dates_and_times(text)]
    # A month inside a date ("Tom Baker Jun 9") ends the run of words before it, so the name stays.
    tokens = [
        _Token(m.start(), m.end(), m.group())
        for m in _NAME_TOKEN.finditer(text)
        if not any(start <= m.start() < end for start, end in dates)
    ]
    previous_end = -1
    index = 0
    while index < len(tokens):
        stop = _run_end(text, tokens, index)
        if stop == index:
            index += 1
            continue
        run = tokens[index:stop]
        span = _name_in_run(text, run, data, previous_end)
        particles = [i for i, token in enumerate(run) if i and token.word in _PARTICLES]
        if span is None and particles:  # "Groetjes van Bram": the words after "van" may still be a name
            span = _name_in_run(text, run[particles[0] + 1 :], data, previous_end)
        if span is not None:
            previous_end = span[1]
            yield _hit("NAME", *span)
        index = stop
    yield from _spelled_names(text, tokens, data)


def _is_capitalised(word: str) -> bool:
    return word[0].isupper() and not (len(word) > 1 and word.isupper())


def _run_end(text: str, tokens: list[_Token], index: int) -> int:
    """The end of a run of capitalised words (particles allowed inside) joined by single spaces."""
    if not _is_capitalised(tokens[index].word):
        return index
    stop = index + 1
    while stop < len(tokens) and stop - index < 6:
        gap = text[tokens[stop - 1].end : tokens[stop].start]
        previous = tokens[stop - 1].word
        abbreviated = len(previous) == 1 or previous.lower() in _TITLES
        if not (gap == " " or (abbreviated and gap in (". ", "."))):
            break
        word = tokens[stop].word
        if _is_capitalised(word):
            stop += 1
        elif (
            word in _PARTICLES
            and stop + 1 < len(tokens)
            and text[tokens[stop].end : tokens[stop + 1].start] == " "
            and _is_capitalised(tokens[stop + 1].word)
        ):
            stop += 2
        else:
            break
    return stop


def _name_in_run(text: str, run: list[_Token], data: _NameData, previous_end: int) -> tuple[int, int] | None:
    """Which part of a run of capitalised words, if any, is a person's name."""

    def ordinary(token: _Token) -> bool:
        word = token.word.lower()
        return word in _STOP_WORDS or word in _TITLES or word in data.common

    def known_first(token: _Token, needed: int) -> bool:
        return data.popularity.get(token.word, 0) >= needed and token.word not in data.places

    def leading_noise(token: _Token) -> bool:
        if _initial(text, token):
            return False
        word = token.word
        name = word in data.first or word in data.last
        return (ordinary(token) and not name) or word.lower() in _PARTICLES or len(word) == 1

    def trailing_noise(token: _Token) -> bool:
        word = token.word
        return (
            word.lower() in _STOP_WORDS
            or word in _PARTICLES
            or len(word) == 1
            or (ordinary(token) and word not in data.last)
        )

    titles = [i for i, token in enumerate(run[:-1]) if token.word.lower() in _TITLES]
    start, stop = titles[-1] + 1 if titles else 0, len(run)  # "Kannst du Frau Weiß": the name follows Frau
    while start < stop and (leading_noise(run[start]) or run[start].word.lower() in _TITLES):
        start += 1
    while stop > start and trailing_noise(run[stop - 1]):
        stop -= 1
    # "Contact Olivia Brown": an unknown word before a known first name is not part of the name, unless
    # that first name may be the surname ("Priyanka Nair").
    while (
        stop - start > 1
        and (run[start].word not in data.first or ordinary(run[start]))
        and known_first(run[start + 1], 1)
        and (stop - start > 2 or run[start + 1].word not in data.last)
    ):
        start += 1
    words = run[start:stop][:4]
    if not words:
        return None
    back = start
    while back > 0 and run[back - 1].word.lower() in _PARTICLES:
        back -= 1
        if run[back].word[0].isupper():  # "De Vries", "Van der Merwe", but not "Groeten van Bram"
            start = back
    span = (run[start].start, words[-1].end)
    context = text[max(0, span[0] - 40) : span[0]]
    titled = _TITLE_BEFORE.search(context) is not None
    strong = titled or _STRONG_CUE.search(context) is not None
    chained = previous_end >= 0 and _CHAIN.match(text[previous_end : span[0]]) is not None
    known = any(t.word in data.first or t.word in data.last for t in words)
    signature = _is_whole_last_line(text, span[0], span[1])
    related = known and (chained or signature or _RELATION_CUE.search(context) is not None)
    greeted = _GREETING_CUE.search(context) is not None
    weak = greeted or related
    not_person = any(t.word.lower() in _NOT_PERSON for t in words)
    if strong and not (not_person and not titled):
        return span
    if not_person:
        return None
    first, last = words[0], words[-1]
    if len(words) == 1:
        if ordinary(first):
            return None
        # A capitalised word that opens a sentence is often not a name ("Server down"), so ask more there.
        needed = 2 if _opens_sentence(text, first.start) else 1
        return span if known_first(first, needed) or (weak and first.word not in data.places) else None
    if all(ordinary(t) for t in words):
        return None
    if known_first(first, 1) or (first.word in data.first and last.word in data.last):
        return span
    # An unknown word before a known surname is a name unless an article makes it a thing ("im Raum Nord").
    first_fits = _initial(text, first) or (len(first.word) > 1 and not ordinary(first))
    place = last.word.lower() in _PLACE_WORDS or _ARTICLE_BEFORE.search(context) is not None
    if last.word in data.last and first_fits and not place:
        return span
    return span if weak and not ordinary(first) else None


def _opens_sentence(text: str, start: int) -> bool:
    before = text[max(0, start - 20) : start].rstrip(" \t\"'(*-")
    return not before or before[-1] in ".!?:;\n"


def _initial(text: str, token: _Token) -> bool:
    return len(token.word) == 1 and token.word.isupper() and text[token.end : token.end + 1] == "."


def _is_whole_last_line(text: str, start: int, end: int) -> bool:
    """A signature: the name is all there is on the text's last non-empty line."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    return (
        text[line_start:start].strip(" \t-") == ""
        and text[end:line_end].strip(" \t.,!") == ""
        and text[line_end:].strip() == ""
        and line_start > 0
    )


_SPELLED_NAME_CUE = re.compile(
    r"(?i)(?:(?:my name is|i am called|ich heiße|ich heisse|mein name ist|je m'appelle|mon nom est|me llamo"
    r"|mi nombre es|ik heet|mijn naam is)[ \t]+|\b(?:name(?: on (?:the )?card)?|cardholder|card holder"
    r"|account holder|karteninhaber|kontoinhaber|inhaber|titulaire|titular|nom|naam|nombre)[ \t]*:[ \t]*)"
)


def _spelled_names(text: str, tokens: list[_Token], data: _NameData) -> Iterator[_Hit]:
    """Names typed in lower or upper case ("my name is anna kowalski", "name on card: HANNAH LEWIS")."""
    starts = {token.start: i for i, token in enumerate(tokens)}
    for cue in _SPELLED_NAME_CUE.finditer(text):
        index = starts.get(cue.end())
        if index is None or _is_capitalised(tokens[index].word):
            continue
        name: list[_Token] = []
        while index < len(tokens) and len(name) < 3:
            word = tokens[index].word
            titled = word[:1].upper() + word[1:].lower()
            known = titled in data.first or titled in data.last
            if not known or word.lower() in _STOP_WORDS or (not name and word.lower() in data.common):
                break
            if name and text[name[-1].end : tokens[index].start] != " ":
                break
            name.append(tokens[index])
            index += 1
        if name:
            yield _hit("NAME", name[0].start, name[-1].end)


_DETECTORS: tuple[Callable[[str], Iterator[_Hit]], ...] = (
    _secrets,
    _emails,
    _ibans,
    _cards,
    _ips,
    _phones,
    _dates_and_times,
    _births,
    _postcodes,
    _names,
)
