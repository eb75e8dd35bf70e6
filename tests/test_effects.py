"""A slow effect that fails unexpectedly still resumes the dialog: nobody is left waiting."""

from __future__ import annotations

from bot.app import Services
from bot.dialogs.model import Attachment, Input, InputKind, PhotoRefused, ReceivePhoto


class BrokenFiles:
    async def fetch(self, attachment: Attachment, max_bytes: int) -> bytes:
        raise RuntimeError("the channel's file server broke")


async def test_a_failing_photo_fetch_becomes_unavailable_and_the_step_comes_back(
    services: Services,
) -> None:
    effects = services.engine._effects  # the runner as serve wires it
    outcome = await effects.run_slow(
        ReceivePhoto(Attachment("f1", 1000, "image/jpeg")),
        channel="telegram",
        files=BrokenFiles(),
        lookup_budget_s=None,
    )
    assert outcome == PhotoRefused("unavailable")
    engine = services.engine
    await engine.handle("telegram", "31", Input(InputKind.START), files=BrokenFiles())
    await engine.handle("telegram", "31", Input(InputKind.CHOICE, "agree"), files=BrokenFiles())
    for typed in ["/usul", "3302015708890003", "3302015708890003", "Sutarmi", "Jl. Mawar 3"]:
        kind = InputKind.COMMAND if typed.startswith("/") else InputKind.TEXT
        await engine.handle("telegram", "31", Input(kind, typed.lstrip("/")), files=BrokenFiles())
    await engine.handle("telegram", "31", Input(InputKind.CHOICE, "PKH"), files=BrokenFiles())
    photo = Input(InputKind.PHOTO, attachment=Attachment("f1", 1000, "image/jpeg"))
    reply = await engine.handle("telegram", "31", photo, files=BrokenFiles())
    # In Indonesian: "we could not receive the photo", then the same question again.
    assert reply.text == "Foto tadi gagal kami terima. Silakan kirim lagi.\n\n" + (
        "Kirim foto bagian depan rumah."
    )
