"""What the detail pane's Sign, Submit and Edit buttons do: review, sign, submit, edit.

Every step runs on the task runner; a key in an encrypted file is unlocked through the
KeyUnlocker. Results are shown in the detail pane the user is looking at (and the status
bar), and the item stays selected after the catalogue refreshes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal

from app.domain.states import State
from app.ui.adapters.catalogue_actions import ActionContext, CatalogueActions
from app.ui.dialogs.key_unlock import KeyAction
from app.ui.dialogs.review_sheet import EditDetailsDialog, ReviewSheet

if TYPE_CHECKING:
    from app.services.item_review import SubmitReview
    from app.services.uploads.remote import SubmitResult
    from app.ui.dialogs.key_unlock import KeyUnlocker

log = logging.getLogger(__name__)
EDITABLE = (State.DRAFT, State.SIGNED, State.REJECTED)


class ItemActions(CatalogueActions):
    message = Signal(str)  # status-bar copy of each result
    sheetOpened = Signal(object)  # ReviewSheet or EditDetailsDialog (tests, screenshots)

    def __init__(self, context: ActionContext, unlocker: KeyUnlocker) -> None:
        super().__init__(context)
        self.unlocker = unlocker
        self.sheet: ReviewSheet | None = None
        self.editor: EditDetailsDialog | None = None
        pane = context.catalogue.detail
        pane.signRequested.connect(lambda i: self.review(i, submit=False))
        pane.submitRequested.connect(lambda i: self.review(i, submit=True))
        pane.editRequested.connect(self.edit)

    # -- feedback ------------------------------------------------------------------------
    def _say(self, item_id: int, text: str, tone: str) -> None:
        """In the pane (kept for this item until another is shown) and in the status bar."""
        self.catalogue.detail.show_result(item_id, text, tone)
        self.message.emit(text)

    def _refresh_keep(self, item_id: int) -> None:
        """Refresh the list (states changed) and keep this item selected and shown."""
        self.catalogue.model.refresh()
        self.catalogue.select_item(item_id)
        self.catalogue.load_detail(item_id)

    def _failed(self, item_id: int, what: str) -> Callable[[BaseException], None]:
        def show(exc: BaseException) -> None:
            from app.domain.errors import KnownError

            if isinstance(exc, KnownError):
                self._say(item_id, f"{what} failed: {exc.message}", "danger")
            self.errors.show(exc)

        return show

    # -- review --------------------------------------------------------------------------
    def review(self, item_id: int, *, submit: bool) -> None:
        """The review sheet first; signing (and submitting) only from there."""
        from app.services.item_review import review_item
        from app.settings import DATANET

        self._say(item_id, "Checking the datanet's rules…", "muted")
        self.runner.start(
            review_item,
            self.services.ctx,
            item_id,
            datanet=self.services.ctx.settings.get(DATANET) or None,
            choices=True,
            on_result=lambda r: self._show_sheet(r, submit),
            on_error=self._failed(item_id, "Review"),
        )

    def _show_sheet(self, review: SubmitReview, submit: bool) -> None:
        # The check is done (the sheet shows its result): clear "Checking…" in both places.
        self.catalogue.detail.show_result(review.item_id, "", "muted")
        self.message.emit("")
        detail = self.catalogue.detail.detail
        state = str(detail.summary.state) if detail is not None else State.DRAFT
        sheet = ReviewSheet(
            review, self.theme, submit=submit, editable=state in EDITABLE, parent=self._parent
        )
        self.sheet = sheet
        sheet.datanetPicked.connect(lambda net: self._recheck(sheet, net))
        sheet.finished.connect(lambda result: self._sheet_closed(sheet, result, submit))
        sheet.open()
        self.sheetOpened.emit(sheet)

    def _recheck(self, sheet: ReviewSheet, datanet: str) -> None:
        """The live rule check of the datanet just picked in the sheet."""
        from app.services.item_review import review_item

        def show(review: SubmitReview) -> None:
            if self.sheet is sheet:
                sheet.set_review(review)

        self.runner.start(
            review_item,
            self.services.ctx,
            sheet.review.item_id,
            datanet=datanet,
            on_result=show,
            on_error=self._failed(sheet.review.item_id, "Rule check"),
        )

    def _sheet_closed(self, sheet: ReviewSheet, result: int, submit: bool) -> None:
        if self.sheet is sheet:
            self.sheet = None
        sheet.deleteLater()
        item_id = sheet.review.item_id
        if sheet.edit_wanted:
            self.edit(item_id, then_review=submit)
        elif result:
            (self._submit if submit else self._sign)(
                item_id, sheet.review.title, sheet.review.datanet
            )

    # -- sign and submit -----------------------------------------------------------------
    def _sign(self, item_id: int, title: str, datanet: str) -> None:
        signing = self.services.signing
        ctx = self.services.ctx

        def work(passphrase: str | None) -> Any:
            return signing.sign_item(
                item_id,
                registry_url=ctx.registry_url,
                datanet=datanet,
                passphrase=passphrase,
            )

        self._say(item_id, "Signing…", "muted")
        self.unlocker.run(
            KeyAction(
                f"sign “{title}”",
                work,
                on_result=lambda _r: self._signed(item_id),
                on_error=self._failed(item_id, "Signing"),
                on_cancel=lambda: self._say(item_id, "Not signed: cancelled", "muted"),
            )
        )

    def _signed(self, item_id: int) -> None:
        self._say(item_id, "✓ Signed: your signature now binds these exact files", "success")
        self._refresh_keep(item_id)

    def _submit(self, item_id: int, title: str, datanet: str) -> None:
        uploads = self.services.uploads
        self._say(item_id, "Signing and queueing for upload…", "muted")
        self.unlocker.run(
            KeyAction(
                f"sign and submit “{title}”",
                lambda passphrase: uploads.submit(item_id, passphrase=passphrase, datanet=datanet),
                on_result=lambda r: self._submitted(item_id, r),
                on_error=self._failed(item_id, "Submitting"),
                on_cancel=lambda: self._say(item_id, "Not submitted: cancelled", "muted"),
            )
        )

    def _submitted(self, item_id: int, result: SubmitResult) -> None:
        state = str(result.state)
        if result.offline:
            text = (
                "Signed and queued: the registry is offline, so the upload starts when it "
                "is reachable again (see Uploads)"
            )
            tone = "warning"
        elif state == State.REJECTED:
            text = "Rejected by the registry: see Format for its reasons"
            tone = "danger"
        else:
            text = "✓ Submitted: uploading now (see Uploads)"
            tone = "success"
        self._say(item_id, text, tone)
        self._refresh_keep(item_id)

    # -- edit ----------------------------------------------------------------------------
    def edit(self, item_id: int, then_review: bool | None = None) -> None:
        detail = self.catalogue.detail.detail
        if detail is None or detail.summary.id != item_id:
            return
        s = detail.summary
        dialog = EditDetailsDialog(
            s.title,
            s.license,
            description=detail.description,
            signed=str(s.state) == State.SIGNED,
            parent=self._parent,
        )
        self.editor = dialog
        dialog.finished.connect(lambda result: self._edited(dialog, item_id, result, then_review))
        dialog.open()
        self.sheetOpened.emit(dialog)

    def _edited(
        self, dialog: EditDetailsDialog, item_id: int, result: int, then_review: bool | None
    ) -> None:
        from app.services.item_review import update_details

        if self.editor is dialog:
            self.editor = None
        dialog.deleteLater()
        if not result:
            if then_review is not None:
                self.review(item_id, submit=then_review)
            return

        def saved(_r: Any) -> None:
            self._say(item_id, "✓ Details saved", "success")
            self._refresh_keep(item_id)
            if then_review is not None:
                self.review(item_id, submit=then_review)

        self.runner.start(
            update_details,
            self.services.ctx,
            item_id,
            title=dialog.title(),
            license=dialog.selected_license(),
            description=dialog.description(),
            on_result=saved,
            on_error=self._failed(item_id, "Saving the details"),
        )
