"""Redaction (S2): every type in its ordinary and adversarial forms, placeholders, restore, failing closed."""

from __future__ import annotations

import json
import re
import sys

import pytest
from meeting_examples import MEETINGS, answer_values, meeting_examples, personal_values

from engine import redact as redact_module
from engine.bench.redact import bench_redact
from engine.errors import RedactionError, UnderstudyError
from engine.redact import (
    Redaction,
    ScrubSummary,
    iban_is_valid,
    luhn_is_valid,
    redact,
    redact_many,
    restore,
    scrub_for_training,
)


def wide(text: str) -> str:
    """The full-width form of ASCII text, as East Asian keyboards type it."""
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


def found(text: str) -> list[tuple[str, str]]:
    """(type, original substring) for each finding, in order."""
    return [(f.type, text[f.start : f.end]) for f in redact(text).findings]


CASES = [
    # e-mail: plain, plus-addressing, full-width, wrapped, obfuscated, zero-width space inside
    ("EMAIL", "Send it to anna.schmidt@example.com today.", "anna.schmidt@example.com"),
    ("EMAIL", "Schick es an j.mueller+steuer@beispiel-mail.de, danke!", "j.mueller+steuer@beispiel-mail.de"),
    (
        "EMAIL",
        f"Contact: {wide('john.doe@example.org')} now",
        wide("john.doe@example.org"),
    ),
    ("EMAIL", "My email is pieter.devries@\nvoorbeeld.nl if needed.", "pieter.devries@\nvoorbeeld.nl"),
    ("EMAIL", "escribidme a maria.garcia [at] ejemplo [dot] es", "maria.garcia [at] ejemplo [dot] es"),
    ("EMAIL", "logs to devops\u200b@example.io please", "devops\u200b@example.io"),
    # phone numbers in several countries' formats, spaced, full-width and wrapped
    ("PHONE", "Call me on +44 20 7946 0958 after 6pm.", "+44 20 7946 0958"),
    ("PHONE", "Our US office: (555) 123-4567, ext. 12.", "(555) 123-4567"),
    ("PHONE", "Ruf mich an: 0049-30-1234567", "0049-30-1234567"),
    ("PHONE", "Mobile: 07911 123456 (UK)", "07911 123456"),
    ("PHONE", "Tel. +1.415.555.0199 \u2013 front desk", "+1.415.555.0199"),
    ("PHONE", "Mon portable : 06 12 34 56 78, merci.", "06 12 34 56 78"),
    ("PHONE", "my number is 0 7 9 1 1 1 2 3 4 5 6, text first", "0 7 9 1 1 1 2 3 4 5 6"),
    ("PHONE", f"Telefon: {wide('030 12345678')} (Büro)", wide("030 12345678")),
    ("PHONE", "Bel me op +31 6\n12345678 morgen.", "+31 6\n12345678"),
    ("PHONE", "Tel.: +49 (0)89 123456-78", "+49 (0)89 123456-78"),
    # payment cards: grouped, dashed, spaced digit by digit, full-width, wrapped, dotted, Amex
    ("CARD", "Card: 4111 1111 1111 1111, exp 12/27", "4111 1111 1111 1111"),
    ("CARD", "Mastercard 5555-5555-5555-4444 please", "5555-5555-5555-4444"),
    ("CARD", "Amex 3782 822463 10005 on file", "3782 822463 10005"),
    ("CARD", "it is 4 0 1 2 8 8 8 8 8 8 8 8 1 8 8 1 ok", "4 0 1 2 8 8 8 8 8 8 8 8 1 8 8 1"),
    ("CARD", f"Karte {wide('4242 4242 4242 4242')} bitte", wide("4242 4242 4242 4242")),
    ("CARD", "Kartennummer 5105 1051\n0510 5100, danke", "5105 1051\n0510 5100"),
    ("CARD", "Discover 6011.1111.1111.1117 expires", "6011.1111.1111.1117"),
    # IBANs: spaced, packed, dashed, lower case, wrapped, full-width
    ("IBAN", "Wire it to GB82 WEST 1234 5698 7654 32.", "GB82 WEST 1234 5698 7654 32"),
    ("IBAN", "IBAN:DE89370400440532013000 (packed)", "DE89370400440532013000"),
    ("IBAN", "Use GB82-WEST-1234-5698-7654-32 now", "GB82-WEST-1234-5698-7654-32"),
    ("IBAN", "iban pl61109010140000071219812874 thanks", "pl61109010140000071219812874"),
    ("IBAN", "IBAN: AT61 1904 3002\n3457 3201", "AT61 1904 3002\n3457 3201"),
    (
        "IBAN",
        f"auf {wide('DE89 3704 0044 0532 0130 00')} bitte",
        wide("DE89 3704 0044 0532 0130 00"),
    ),
    # IP addresses: v4, v6 (compressed, zone, mapped), full-width, defanged
    ("IP", "The server at 192.168.1.25 is down.", "192.168.1.25"),
    ("IP", "Allow 2001:db8:85a3::8a2e:370:7334 now", "2001:db8:85a3::8a2e:370:7334"),
    ("IP", "seen fe80::1ff:fe23:4567:890a%eth0 here", "fe80::1ff:fe23:4567:890a%eth0"),
    ("IP", "mapped ::ffff:192.0.2.128 in the log", "::ffff:192.0.2.128"),
    ("IP", f"Ping {wide('172.16.254.3')} now", wide("172.16.254.3")),
    ("IP", "IOC: 203.0.113[.]45 (defanged)", "203.0.113[.]45"),
    # URLs carrying credentials
    (
        "URL_CREDENTIALS",
        "DB=postgres://admin:S3cr3t@db.example.com:5432/prod",
        "postgres://admin:S3cr3t@db.example.com:5432/prod",
    ),
    (
        "URL_CREDENTIALS",
        "REDIS=redis://:p4ssw0rd@cache.example.com:6379/0",
        "redis://:p4ssw0rd@cache.example.com:6379/0",
    ),
    (
        "URL_CREDENTIALS",
        "db mysql://app:Qw!9zLp2#@db.example.net/shop",
        "mysql://app:Qw!9zLp2#@db.example.net/shop",
    ),
    # secrets: known prefixes, JWT, PEM, assignments, high entropy, wrapped, full-width
    ("SECRET", "KEY=sk-proj-4fR9kLmN2pQ7sT1vX8zA3bC6dE0gH5jK", "sk-proj-4fR9kLmN2pQ7sT1vX8zA3bC6dE0gH5jK"),
    (
        "SECRET",
        "token ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R leaked",
        "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
    ),
    ("SECRET", "id AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
    ("SECRET", "k = 'AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY'", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    (
        "SECRET",
        "SLACK=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
    ),
    ("SECRET", "HF hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345678 ok", "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345678"),
    ("SECRET", "glpat-Ab3De6Gh9Jk2Mn5Pq8St expired", "glpat-Ab3De6Gh9Jk2Mn5Pq8St"),
    (
        "SECRET",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9Pl",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9Pl",
    ),
    (
        "SECRET",
        "key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\nbye",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
    ),
    ("SECRET", "mot de passe : Soleil2024!", "Soleil2024!"),
    ("SECRET", "Das Passwort für den Router ist Kaffee!Tasse42 ok", "Kaffee!Tasse42"),
    ("SECRET", "session key: Zq7Xv2Kp9Lm4Nw8Rt3Yb6Hc1Df5Gj0Ws", "Zq7Xv2Kp9Lm4Nw8Rt3Yb6Hc1Df5Gj0Ws"),
    (
        "SECRET",
        "token: ghp_9Zy8Xw7Vu6Ts5Rq4Po3Nm2\nLk1Ji0Hg9Fe8Dc7 wrapped",
        "ghp_9Zy8Xw7Vu6Ts5Rq4Po3Nm2\nLk1Ji0Hg9Fe8Dc7",
    ),
    (
        "SECRET",
        f"Schlüssel: {wide('AKIAIOSFODNN7EXAMPLE')}",
        wide("AKIAIOSFODNN7EXAMPLE"),
    ),
    # postcodes in five countries, with and without the cues they need
    ("POSTCODE", "10 Downing Street, London SW1A 2AA", "SW1A 2AA"),
    ("POSTCODE", f"Deliver to London {wide('SW1A 1AA')} please", wide("SW1A 1AA")),
    ("POSTCODE", "Springfield, IL 62704-1234", "62704-1234"),
    ("POSTCODE", "Lieferadresse: Hauptstraße 5, 10115 Berlin", "10115"),
    ("POSTCODE", "Wohnhaft: Musterweg 12\n80331 München", "80331"),
    ("POSTCODE", "Livraison au 12 rue de Rivoli, 75001 Paris", "75001"),
    ("POSTCODE", "Ons adres is Damrak 1, 1012 LG Amsterdam", "1012 LG"),
    ("POSTCODE", "Ottawa, ON K1A 0B1", "K1A 0B1"),
    # dates of birth in five languages and several formats
    ("DOB", "I was born on 14/03/1985 in Leeds.", "14/03/1985"),
    ("DOB", "Date of birth: 3rd April 1979", "3rd April 1979"),
    ("DOB", "Ich bin am 12.05.1972 in Köln geboren.", "12.05.1972"),
    ("DOB", "Elle est née le 5 juin 1988 à Lyon.", "5 juin 1988"),
    ("DOB", "Fecha de nacimiento: 22 de octubre de 1965", "22 de octubre de 1965"),
    ("DOB", "Ik ben geboren op 9 maart 1993.", "9 maart 1993"),
    ("DOB", f"DOB: {wide('20/11/1991')}", wide("20/11/1991")),
    ("DOB", "Date of birth:\n02/29/1996", "02/29/1996"),
    # names: cues in five languages, signatures, lists, lower case, full-width, initials
    ("NAME", "Hi, my name is Sarah Connor and I need help.", "Sarah Connor"),
    ("NAME", "Sehr geehrter Herr Müller, danke.", "Müller"),
    ("NAME", "Bonjour Mme Lefèvre, merci.", "Lefèvre"),
    ("NAME", "Estimado Sr. García López: le escribo.", "García López"),
    ("NAME", "Geachte heer De Vries, hierbij.", "De Vries"),
    ("NAME", "Thanks,\nEmily Watson", "Emily Watson"),
    ("NAME", "Can you ask Priya about the slides?", "Priya"),
    ("NAME", "I'm Oluwaseun, and I'd like a table.", "Oluwaseun"),
    ("NAME", "my name is anna kowalski, hello", "anna kowalski"),
    ("NAME", "name on card: HANNAH LEWIS", "HANNAH LEWIS"),
    ("NAME", "My name is " + wide("James O'Brien") + ".", wide("James O'Brien")),
    ("NAME", "Rekening t.n.v. J. de Vries", "J. de Vries"),
]


@pytest.mark.parametrize(("kind", "text", "value"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_type_is_found_with_its_span_in_the_original_text(kind, text, value):
    assert (kind, value) in found(text)
    redacted = redact(text).text
    assert value not in redacted
    assert "[" + kind + "_1]" in redacted


def test_several_names_in_one_sentence_are_each_redacted():
    text = "Meeting with Jürgen Schneider and Fatima Zahra, cc: Li Wei, Kenji Sato"
    assert [v for k, v in found(text) if k == "NAME"] == [
        "Jürgen Schneider",
        "Fatima Zahra",
        "Li Wei",
        "Kenji Sato",
    ]


NEGATIVES = [
    "Order #4839201745 shipped on 2024-03-15 and arrives in 3-5 days.",
    "Please upgrade to version 10.2.3.4 of the desktop client.",
    "The price is €1,299.00, or 3 instalments of €433.00.",
    "Invoice INV-2024-000123 is due on 31/12/2024.",
    "The meeting is on Monday, March 3rd 2025 at 10:30 in the main office.",
    "Die Bestellung 1234567890 wurde heute versandt.",
    "Commande n° 2024-55821 expédiée le 12/03/2024.",
    "Commit 3f5a9c2e1b7d4f60a8e2c1b9d7f3a5e0c4b8d2f6 fixed the flaky test.",
    "In C++ we write std::vector<int> and call Foo::bar() from main.",
    "Rename getUserAccountDetailsById2024 to something shorter.",
    "Happy Easter! See you in April, and say hello to the whole team.",
    "Call 911 or 112 in an emergency.",
    "In 2023 AI Act negotiations moved fast in Brussels.",
    "We shipped 94103 units last year.",
    "Python 3.11.4 and Node 20.10.0 are installed on the build server.",
    "The Apple Watch Series 9 costs 429 dollars in the Berlin store.",
    "See section 4.2.1.3 of the spec.",
    "The Rolling Stones played Hyde Park in 2013.",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_are_left_alone(text):
    assert redact(text) == Redaction(text=text, findings=[], mapping={})


def test_the_same_value_gets_the_same_placeholder_within_a_request():
    text = (
        "Mail bob@example.net, then BOB@Example.NET, then alice@example.net; "
        "call +44 20 7946 0958 or 0044 20 7946 0958."
    )
    result = redact(text)
    placeholders = [(f.type, f.placeholder) for f in result.findings]
    assert placeholders == [
        ("EMAIL", "[EMAIL_1]"),
        ("EMAIL", "[EMAIL_1]"),
        ("EMAIL", "[EMAIL_2]"),
        ("PHONE", "[PHONE_1]"),
        ("PHONE", "[PHONE_1]"),
    ]
    assert result.mapping == {
        "[EMAIL_1]": "bob@example.net",
        "[EMAIL_2]": "alice@example.net",
        "[PHONE_1]": "+44 20 7946 0958",
    }
    assert result.text == "Mail [EMAIL_1], then [EMAIL_1], then [EMAIL_2]; call [PHONE_1] or [PHONE_1]."


def test_card_and_iban_spellings_of_one_number_share_a_placeholder():
    result = redact(
        "Card 4111 1111 1111 1111 or 4111-1111-1111-1111; "
        "IBAN DE89 3704 0044 0532 0130 00 = de89370400440532013000"
    )
    assert [f.placeholder for f in result.findings] == ["[CARD_1]", "[CARD_1]", "[IBAN_1]", "[IBAN_1]"]


def test_redact_many_numbers_all_messages_together():
    texts = [
        "I'm Sarah Connor, sarah@example.com",
        "Sarah Connor again: reach me at kyle@example.com",
        "nothing here",
    ]
    redacted, mapping = redact_many(texts)
    assert redacted == ["I'm [NAME_1], [EMAIL_1]", "[NAME_1] again: reach me at [EMAIL_2]", "nothing here"]
    assert mapping == {
        "[NAME_1]": "Sarah Connor",
        "[EMAIL_1]": "sarah@example.com",
        "[EMAIL_2]": "kyle@example.com",
    }
    assert [restore(text, mapping) for text in redacted] == texts


def test_restore_round_trips_and_puts_originals_into_an_answer():
    text = "Hi, my name is Sarah Connor, IBAN DE89 3704 0044 0532 0130 00, born 14/03/1985."
    result = redact(text)
    assert restore(result.text, result.mapping) == text
    answer = "Sure [NAME_1], I noted [ IBAN_1 ]; [EMAIL_9] is unknown."
    assert restore(answer, result.mapping) == (
        "Sure Sarah Connor, I noted DE89 3704 0044 0532 0130 00; [EMAIL_9] is unknown."
    )


def test_full_width_findings_report_spans_in_the_original_text():
    text = f"{wide('mail')}: {wide('john@example.org')}"
    (finding,) = redact(text).findings
    assert text[finding.start : finding.end] == wide("john@example.org")


def test_detection_failure_raises_redaction_error(monkeypatch):
    def broken(text):
        raise ValueError("detector exploded")
        yield

    monkeypatch.setattr(redact_module, "_DETECTORS", (broken,))
    with pytest.raises(RedactionError, match="nothing was sent") as raised:
        redact("anything")
    assert isinstance(raised.value, UnderstudyError)
    with pytest.raises(RedactionError):
        redact_many(["a", "b"])


def test_missing_name_lists_fail_closed(monkeypatch):
    redact_module._name_data.cache_clear()
    monkeypatch.setitem(sys.modules, "faker.providers.person", None)
    try:
        with pytest.raises(RedactionError, match="faker"):
            redact("Hi Anna")
    finally:
        redact_module._name_data.cache_clear()


def test_non_text_is_refused():
    with pytest.raises(RedactionError, match="needs text"):
        redact(b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111 1111 1111 1111", True),
        ("5555-5555-5555-4444", True),
        ("378282246310005", True),
        ("4111 1111 1111 1112", False),
        ("5555-5555-5555-4445", False),
        ("", False),
    ],
)
def test_luhn_checksum(number, valid):
    assert luhn_is_valid(number) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("GB82 WEST 1234 5698 7654 32", True),
        ("DE89 3704 0044 0532 0130 00", True),
        ("nl91abna0417164300", True),
        ("GB82 WEST 1234 5698 7654 33", False),
        ("DE89 3704 0044 0532 0130 01", False),
        ("DE89 3704 0044 0532 0130 0", False),
        ("XX89 3704 0044 0532 0130 00", False),
    ],
)
def test_iban_checksum(iban, valid):
    assert iban_is_valid(iban) is valid


def test_checksum_failures_are_not_redacted():
    assert found("card 4111 1111 1111 1112 and IBAN GB82 WEST 1234 5698 7654 33") == []


def test_eval_set_meets_the_recall_targets():
    """The contract: what S2 promises before anything is sent to a cloud model or trained on."""
    result = bench_redact()
    types = result["types"]
    assert result["examples"] >= 150
    for kind in ("EMAIL", "PHONE", "CARD", "IBAN", "IP", "URL_CREDENTIALS", "SECRET"):
        assert types[kind]["labelled"] >= 10, kind
        assert types[kind]["recall"] >= 0.99, (kind, types[kind], result["missed"])
    assert types["NAME"]["recall"] >= 0.90, (types["NAME"], result["missed"])
    assert types["POSTCODE"]["labelled"] >= 10 and types["DOB"]["labelled"] >= 10
    assert result["overall"]["precision"] >= 0.95, result["false_positives"]


# --- dates and times are neither phone numbers nor names ----------------------------------------------

DATES_AND_TIMES = [
    "Call on 03/02/2026 at 12:15 pm to confirm.",
    "Call on 03/02/2026 12:15 pm to confirm.",
    "Phone sync 2026-06-09 14:00 with the vendor.",
    "Phone sync 2026-06-09T14:00:00Z with the vendor.",
    "Rückruf 12.03.2026 10:30 bestätigt.",
    "Review on Jun 9 2026 in room 4.",
    "Jun 9, 2026: the new pricing starts.",
    "Jan 5 2026 is the deadline.",
    "See you in June.",
    "May we move it to May 4?",
    "Let's meet March 3rd.",
    "Standup moved to Mon 9:30.",
    "Deadline Aug 9 2026, 5 pm.",
]


@pytest.mark.parametrize("text", DATES_AND_TIMES)
def test_dates_times_and_months_are_left_alone(text):
    assert redact(text) == Redaction(text=text, findings=[], mapping={})
    assert scrub_for_training([[text]])[0] == [[text]]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Lunch with Tom Baker Jun 9 2026 at 1 pm.", ["Tom Baker"]),
        ("Ask Priya May 4 about the slides.", ["Priya"]),
        ("Interview with Jun Park on Jun 9, 2026.", ["Jun Park"]),
        ("Meeting with Jan Novak on Jan 5 2026.", ["Jan Novak"]),
    ],
)
def test_a_name_beside_a_date_is_found_without_the_date(text, names):
    assert found(text) == [("NAME", name) for name in names]


def test_a_phone_number_beside_a_date_and_time_is_still_found():
    text = "Call Jan Novak on Mon 9:30 at 0171 2345678, or on 03/02/2026 at 12:15 pm."
    assert found(text) == [("NAME", "Jan Novak"), ("PHONE", "0171 2345678")]


# --- training: realistic fakes instead of placeholders ------------------------------------------------


def scrub(*texts: str, seed: int = 0) -> list[str]:
    (result,), _ = scrub_for_training([list(texts)], seed)
    return result


TWO_PART_NAME = re.compile(r"[A-Z][a-z'\-]+ [A-Z][a-z'\-]+")


def test_one_name_gets_one_fake_in_every_message_of_an_example():
    system, question, answer = scrub(
        "You help Maria Lopez with her calendar.",
        "From: Maria Lopez\nPlease invite Tom Baker and Maria Lopez's deputy.",
        "Invited Tom Baker on behalf of Maria Lopez.",
    )
    maria = system.removeprefix("You help ").removesuffix(" with her calendar.")
    tom = answer.removeprefix("Invited ").split(" on behalf")[0]
    assert TWO_PART_NAME.fullmatch(maria) and TWO_PART_NAME.fullmatch(tom)
    assert maria != tom and "Maria" not in maria + tom and "Lopez" not in maria and "Baker" not in tom
    assert question == f"From: {maria}\nPlease invite {tom} and {maria}'s deputy."
    assert answer == f"Invited {tom} on behalf of {maria}."


def test_a_json_answer_stays_valid_json_with_the_fake_names_of_the_question():
    question, answer = scrub(
        "Who attends? Meeting with Jürgen Schneider and Fatima Zahra, cc: Kenji Sato.",
        json.dumps({"attendees": ["Jürgen Schneider", "Fatima Zahra", "Kenji Sato"]}, ensure_ascii=False),
    )
    attendees = json.loads(answer)["attendees"]
    assert len(set(attendees)) == 3
    for name in attendees:
        assert TWO_PART_NAME.fullmatch(name) and name in question
    for real in ("Jürgen", "Schneider", "Fatima", "Zahra", "Kenji", "Sato"):
        assert real not in question + answer


def test_a_value_found_in_the_question_is_faked_where_the_answer_gives_no_cue():
    question, answer = scrub(
        "my name is anna kowalski, call me on 0171 2345678", "anna kowalski / 0171 2345678"
    )
    fake_name, fake_phone = answer.split(" / ")
    assert question == f"my name is {fake_name}, call me on {fake_phone}"
    assert fake_name.islower() and len(fake_name.split()) == 2 and "anna" not in fake_name


def test_fakes_keep_the_shape_answers_depend_on():
    texts = scrub(
        "Mail anna.schmidt@example.com or Anna Schmidt at J.Mueller+steuer@beispiel-mail.de.",
        "Call +44 20 7946 0958, 0044 20 7946 0958 or (555) 123-4567; Tel.: +49 (0)89 123456-78.",
        "Rekening t.n.v. J. de Vries; name on card: HANNAH LEWIS; Sehr geehrter Herr Müller",
        "Springfield, IL 62704-1234; London SW1A 2AA; born on 14/03/1985; Date of birth: 3rd April 1979",
        "The server at 192.168.1.25 is down.",
    )
    emails, phones, names, places, ip = texts
    name = re.search(r"or (\S+ \S+) at", emails).group(1)
    first, last = (part.lower() for part in name.split())
    assert re.fullmatch(rf"Mail {first}\.{last}@[\w.\-]+\.\w+ or {name} at \S+@[\w.\-]+\.\w+\.", emails)
    assert "schmidt" not in emails.lower() and "mueller" not in emails.lower()
    shapes = re.fullmatch(
        r"Call (\S+ \S+ \S+ \S+), (\S+ \S+ \S+ \S+) or (\(\d{3}\) \d{3}-\d{4}); Tel\.: (.*)\.", phones
    )
    uk, same_uk, us, german = shapes.groups()
    assert re.fullmatch(r"\+44 \d\d \d{4} \d{4}", uk) and same_uk == "00" + uk[1:]
    assert uk != "+44 20 7946 0958" and us != "(555) 123-4567"
    assert re.fullmatch(r"\+49 \(0\)\d\d \d{6}-\d\d", german) and german != "+49 (0)89 123456-78"
    assert re.fullmatch(
        r"Rekening t\.n\.v\. [A-Z]\. de [A-Z][a-z'\-]+; name on card: [A-Z'\-]+ [A-Z'\-]+; "
        r"Sehr geehrter Herr [A-Z][a-z'\-]+",
        names,
    )
    assert "Vries" not in names and "HANNAH" not in names and "Müller" not in names
    assert re.fullmatch(
        r"Springfield, IL \d{5}-\d{4}; London [A-Z]{2}\d[A-Z] \d[A-Z]{2}; born on \d\d/\d\d/\d{4}; "
        r"Date of birth: \d{1,2}(st|nd|rd|th) April \d{4}",
        places,
    )
    assert (
        "62704" not in places and "SW1A 2AA" not in places and "1985" not in places and "1979" not in places
    )
    assert re.fullmatch(r"The server at \d+\.\d+\.\d+\.\d+ is down\.", ip) and "192.168.1.25" not in ip


def test_secrets_are_removed_and_counted():
    texts = [
        "KEY=sk-proj-4fR9kLmN2pQ7sT1vX8zA3bC6dE0gH5jK and mot de passe : Soleil2024!",
        "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, "
        "DB=postgres://admin:S3cr3t@db.example.com:5432/prod",
        "Saved sk-proj-4fR9kLmN2pQ7sT1vX8zA3bC6dE0gH5jK.",
    ]
    (scrubbed,), summary = scrub_for_training([texts])
    assert scrubbed == [
        "KEY=[SECRET] and mot de passe : [SECRET]",
        "Card [CARD], IBAN [IBAN], DB=[URL_CREDENTIALS]",
        "Saved [SECRET].",
    ]
    assert summary.secrets_removed == {"CARD": 1, "IBAN": 1, "SECRET": 2, "URL_CREDENTIALS": 1}
    assert summary.surrogates == {}


def test_placeholders_of_a_cloud_request_become_fakes_too():
    question, answer = scrub("Hi, I'm [NAME_1], mail me at [EMAIL_1]", "Dear [NAME_1], I wrote to [EMAIL_1].")
    name, email = re.fullmatch(r"Dear (.+), I wrote to (.+)\.", answer).groups()
    assert TWO_PART_NAME.fullmatch(name) and re.fullmatch(r"[\w.\-]+@[\w.\-]+\.\w+", email)
    assert question == f"Hi, I'm {name}, mail me at {email}"


def test_the_summary_counts_values_per_example_and_examples_left_out():
    examples = [
        [
            "I'm Sarah Connor, sarah@example.com",
            "Sarah Connor again: kyle@example.com, token ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
        ],
        ["nothing personal here", "fine"],
        ["Call me on +44 20 7946 0958", b"not text"],  # type: ignore[list-item]
        ["Thanks,\nEmily Watson", "Emily Watson, +44 20 7946 0958"],
    ]
    scrubbed, summary = scrub_for_training(examples)
    assert scrubbed[1] == ["nothing personal here", "fine"] and scrubbed[2] is None
    assert summary == ScrubSummary(
        examples=4,
        examples_changed=2,
        surrogates={"EMAIL": 2, "NAME": 2, "PHONE": 1},
        secrets_removed={"SECRET": 1},
        dropped=1,
    )


def test_a_build_is_reproducible_and_each_example_seeded_on_its_own():
    examples = meeting_examples()
    first, summary = scrub_for_training(examples, seed=3)
    again, summary_again = scrub_for_training(examples, seed=3)
    backwards, _ = scrub_for_training(examples[::-1], seed=3)
    reseeded, _ = scrub_for_training(examples, seed=4)
    assert first == again and summary == summary_again
    assert backwards == first[::-1]
    assert reseeded != first
    # Two spellings of one example (the dataset's dedupe sees them as one) get the same fake.
    (fake,) = scrub("Meeting with Tom Baker")
    (respelled,) = scrub("MEETING  with Tom Baker")
    assert fake.removeprefix("Meeting with ") == respelled.removeprefix("MEETING  with ")


def test_the_meeting_task_stays_learnable_after_scrubbing():
    """Every value of every gold answer still appears verbatim in its scrubbed e-mail; no real one is left."""
    scrubbed, summary = scrub_for_training(meeting_examples())
    for meeting, (system, email, answer) in zip(MEETINGS, scrubbed, strict=True):
        gold = json.loads(answer)
        assert [value for value in answer_values(gold) if value not in email] == [], (email, answer)
        assert (gold["date"], gold["time"]) == meeting[3:5]
        for real in personal_values(meeting):
            assert real not in system + email + answer, (real, email, answer)
    assert summary.examples == summary.examples_changed == len(MEETINGS)
    assert summary.surrogates == {
        "EMAIL": len(MEETINGS),
        "NAME": sum(1 + len(meeting[2]) for meeting in MEETINGS),
        "PHONE": sum(meeting[5] is not None for meeting in MEETINGS),
    }
