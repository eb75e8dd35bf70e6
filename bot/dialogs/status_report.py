"""A registry status report in plain words: a full page for chats, a brief one for USSD."""

from __future__ import annotations

from bot.dialogs.model import Choice, Reply
from bot.i18n import N_, Translator
from registry_client.models import PROGRAMME_CODES, ProgrammeStatus, StatusReport

USSD_SCREEN = 160
_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}

PROGRAMME_NAMES = {
    "PKH": N_("PKH (Family Hope Programme, conditional cash)"),
    "BPNT": N_("BPNT/Sembako (food aid)"),
    "PBI-JK": N_("PBI-JK (health insurance premium paid by the government)"),
    "BLT": N_("BLT (direct cash aid)"),
    "PIP": N_("PIP (Smart Indonesia Programme, school aid)"),
}

REASONS = {
    "decile_above_cutoff": (
        N_("the household's decile is above the programme's limit"),
        N_("decile above limit"),
    ),
    "not_verified_siak": (
        N_("the NIK could not be matched with the population register (Dukcapil)"),
        N_("NIK not matched"),
    ),
    "deceased": (N_("the recipient is recorded as deceased"), N_("recorded deceased")),
    "moved_out": (N_("the household is recorded as having moved away"), N_("moved away")),
    "duplicate": (N_("the entry duplicates another registration"), N_("duplicate entry")),
    "graduated": (
        N_("the household has graduated from the programme (now self-reliant)"),
        N_("graduated"),
    ),
    "objection_upheld": (
        N_("an objection (sanggahan) against this entry was upheld"),
        N_("objection upheld"),
    ),
}
_OTHER_REASON = (N_("another reason recorded by the registry"), N_("other reason"))

# The security rule: a message that mentions money says that the service never asks for
# money, a PIN or an OTP (scammers ask for "fees" and codes in the name of social aid).
SCAM_WARNING = N_(
    "Social aid is free: this service never asks for money, a PIN or an OTP code. "
    "Never give them to anyone."
)
SCAM_WARNING_BRIEF = N_("Free: we never ask money/PIN/OTP.")


_QUARTER_WORDS = {
    1: N_("first quarter of {year}"),
    2: N_("second quarter of {year}"),
    3: N_("third quarter of {year}"),
    4: N_("fourth quarter of {year}"),
}


def _quarter(quarter: str) -> tuple[int, str] | None:
    """`2026Q4` → (4, "2026"); None for anything else."""
    year, _, number = quarter.partition("Q")
    if not (year.isdigit() and number.isdigit() and int(number) in _ROMAN):
        return None
    return int(number), year


def quarter_words(quarter: str, t: Translator) -> str:
    """A quarter in words: 2026Q4 → "Triwulan IV 2026" / "fourth quarter of 2026"."""
    parsed = _quarter(quarter)
    if parsed is None:
        return quarter
    number, year = parsed
    return t.gettext(_QUARTER_WORDS[number]).format(year=year, roman=_ROMAN[number])


def quarter_short(quarter: str, t: Translator) -> str:
    """A quarter on a small screen: 2026Q4 → "Triwulan IV 2026" / "Q4 2026"."""
    parsed = _quarter(quarter)
    if parsed is None:
        return quarter
    number, year = parsed
    return t.gettext("Q{number} {year}").format(number=number, roman=_ROMAN[number], year=year)


def decile_words(decile: int, t: Translator) -> str:
    return t.gettext(
        "Welfare decile {decile} of 10: the household ranks among the {low}–{high} per cent "
        "of households with the lowest welfare in Indonesia."
    ).format(decile=decile, low=(decile - 1) * 10 + 1, high=decile * 10)


def render_report(report: StatusReport, t: Translator, choices: tuple[Choice, ...]) -> Reply:
    return Reply(text=_full_text(report, t), brief=_brief_text(report, t), choices=choices)


def _full_text(report: StatusReport, t: Translator) -> str:
    members = report.household.members
    lines = [
        t.gettext("Social-aid status, {quarter}").format(quarter=quarter_words(report.quarter, t)),
        t.gettext("Name: {name}").format(name=report.name_masked),
        decile_words(report.household.decile, t),
        t.ngettext("{count} household member", "{count} household members", members).format(
            count=members
        ),
        "",
        t.gettext("Programmes:"),
    ]
    lines += [_programme_line(programme, t) for programme in report.programmes]
    listed = {programme.code for programme in report.programmes}
    missing = [code for code in PROGRAMME_CODES if code not in listed]
    if missing:
        lines.append(t.gettext("Not enrolled: {codes}.").format(codes=", ".join(missing)))
    lines += [
        "",
        t.gettext("Registry data as of {date}.").format(date=t.date(report.updated_at)),
        "",
        _next_steps(report, t),
        t.gettext(SCAM_WARNING),
    ]
    return "\n".join(lines)


def _programme_line(programme: ProgrammeStatus, t: Translator) -> str:
    name = t.gettext(PROGRAMME_NAMES.get(programme.code, programme.code))
    if programme.status == "active":
        line = "✅ " + t.gettext("{programme}: active").format(programme=name)
        if programme.since:
            line += " " + t.gettext("since the {quarter}").format(
                quarter=quarter_words(programme.since, t)
            )
        if programme.amount_idr is not None:
            amount = t.rupiah(programme.amount_idr)
            if programme.period:
                line += " — " + t.gettext("{amount} for the {quarter}").format(
                    amount=amount, quarter=quarter_words(programme.period, t)
                )
            else:
                line += f" — {amount}"
        return line
    reason = t.gettext(REASONS.get(programme.reason_code or "", _OTHER_REASON)[0])
    if programme.status == "ended":
        line = "⛔ " + t.gettext("{programme}: ended").format(programme=name)
        if programme.until:
            line += " " + t.gettext("after the {quarter}").format(
                quarter=quarter_words(programme.until, t)
            )
    else:
        line = "⛔ " + t.gettext("{programme}: not approved").format(programme=name)
    return line + ". " + t.gettext("Reason: {reason}.").format(reason=reason)


def _next_steps(report: StatusReport, t: Translator) -> str:
    states = {programme.status for programme in report.programmes}
    steps = []
    if "active" in states:
        steps.append(
            t.gettext(
                "Payments go through the state banks (Himbara) or PT Pos; ask your PKH "
                "facilitator or the village office for the payment schedule."
            )
        )
    if states & {"ended", "refused"} or not states:
        steps.append(
            t.gettext(
                "If this does not match your situation, you can file an objection "
                "(sanggahan) or a data correction (perbaikan data) through the village or "
                "kelurahan office, a PKH facilitator, or the Cek Bansos app."
            )
        )
    return t.gettext("What you can do next:") + " " + " ".join(steps)


def _brief_text(report: StatusReport, t: Translator) -> str:
    """Fit one USSD screen: drop detail until it does, never the programmes themselves,
    and never the scam warning while an amount is shown."""
    header = t.gettext("{quarter} decile {decile}").format(
        quarter=quarter_short(report.quarter, t), decile=report.household.decile
    )
    warning = t.gettext(SCAM_WARNING_BRIEF)
    detailed = [_brief_programme(p, t, amount=True, reason=True) for p in report.programmes]
    amounts = [_brief_programme(p, t, amount=True, reason=False) for p in report.programmes]
    plain = [_brief_programme(p, t, amount=False, reason=False) for p in report.programmes]
    none = [t.gettext("No programme.")] if not report.programmes else []
    candidates = [
        [report.name_masked, header, *detailed, *none, warning],
        [header, *detailed, *none, warning],
        [header, *amounts, *none, warning],
        [header, *plain, *none, warning],
        [header, *plain, *none],  # no amount left, so no money is mentioned
    ]
    for lines in candidates:
        text = "\n".join(lines)
        if len(text) <= USSD_SCREEN:
            return text
    return "\n".join(candidates[-1])[:USSD_SCREEN]


def _brief_programme(
    programme: ProgrammeStatus, t: Translator, *, amount: bool, reason: bool
) -> str:
    if programme.status == "active":
        line = t.gettext("{code} active").format(code=programme.code)
        if amount and programme.amount_idr is not None:
            line += " " + t.rupiah(programme.amount_idr)
        return line
    if programme.status == "ended":
        line = t.gettext("{code} ended").format(code=programme.code)
    else:
        line = t.gettext("{code} not approved").format(code=programme.code)
    if reason:
        line += ": " + t.gettext(REASONS.get(programme.reason_code or "", _OTHER_REASON)[1])
    return line
