"""Stable error codes with HTTP status and Japanese/English messages.

Services raise ``AppError("code")``; the error middleware turns it into
``{"error": {"code", "message", "message_en", ...}}``. Codes are part of the API contract:
never rename one, add a new one.
"""

from __future__ import annotations

from shared import apperror

# code: (http status, 日本語, English)
CATALOGUE: dict[str, tuple[int, str, str]] = {
    "invalid_json": (400, "リクエストの形式が正しくありません（JSON）。", "The request body is not valid JSON."),
    "invalid_utf8": (400, "文字コードが正しくありません（UTF-8 で送ってください）。", "The request body is not valid UTF-8."),
    "invalid_request": (400, "入力内容に誤りがあります。", "The request does not match the schema."),
    "unsupported_media_type": (415, "送信形式に対応していません。", "Unsupported content type."),
    "body_too_large": (413, "送信データが大きすぎます。", "The request body is too large."),
    "file_too_large": (413, "ファイルが大きすぎます。", "The file is too large."),
    "file_type_not_allowed": (415, "この種類のファイルは送れません。", "This file type is not allowed."),
    "empty_file": (400, "空のファイルは送れません。", "The file is empty."),
    "not_authenticated": (401, "ログインしてください。", "Authentication required."),
    "session_expired": (401, "一定時間操作がなかったため、ログアウトしました。", "The session has expired."),
    "invalid_credentials": (401, "ログインIDまたはパスワードが違います。", "Wrong login or password."),
    "wrong_current_password": (400, "現在のパスワードが違います。", "The current password is wrong."),
    "account_locked": (423, "ログインの失敗が続いたため、一時的にロックされています。しばらくしてからお試しください。",
                       "The account is temporarily locked after repeated failures."),
    "account_disabled": (403, "このアカウントは利用できません。", "This account is disabled."),
    "totp_required": (401, "確認コード（ワンタイムパスワード）を入力してください。", "A TOTP code is required."),
    "totp_invalid": (401, "確認コードが違います。", "The TOTP code is wrong."),
    "totp_enrolment_required": (403, "二要素認証の設定が必要です。", "TOTP enrolment is required first."),
    "totp_not_pending": (409, "二要素認証の設定が始まっていません。", "No TOTP enrolment is in progress."),
    "ip_not_allowed": (403, "この端末からは利用できません。", "Access from this address is not allowed."),
    "csrf_failed": (403, "画面を再読み込みしてから、もう一度操作してください。", "CSRF check failed."),
    "origin_mismatch": (403, "不正な送信元からのリクエストです。", "Request origin not allowed."),
    "forbidden": (403, "この操作を行う権限がありません。", "You are not allowed to do this."),
    "rate_limited": (429, "操作が多すぎます。しばらくしてからお試しください。", "Too many requests."),
    "not_found": (404, "見つかりません。", "Not found."),
    "room_not_found": (404, "ルームが見つかりません。", "Room not found."),
    "message_not_found": (404, "メッセージが見つかりません。", "Message not found."),
    "staff_not_found": (404, "職員が見つかりません。", "Staff member not found."),
    "department_not_found": (404, "部署が見つかりません。", "Department not found."),
    "file_not_found": (404, "ファイルが見つかりません。", "File not found."),
    "org_not_found": (404, "団体が見つかりません。", "Organisation not found."),
    "read_only_member": (403, "このルームでは閲覧のみ可能です。", "You can read but not post in this room."),
    "announcement_owner_only": (403, "お知らせルームに投稿できるのは管理者だけです。", "Only owners post in announcement rooms."),
    "room_archived": (409, "このルームはアーカイブされています。", "The room is archived."),
    "not_message_author": (403, "自分のメッセージだけ編集・削除できます。", "Only the author can edit or delete this message."),
    "message_deleted": (409, "削除されたメッセージです。", "The message has been deleted."),
    "empty_message": (400, "メッセージが空です。", "The message is empty."),
    "message_too_long": (400, "メッセージが長すぎます。", "The message is too long."),
    "too_many_mentions": (400, "メンションが多すぎます。", "Too many mentions."),
    "mention_not_member": (400, "ルームのメンバーでない人はメンションできません。", "Mentioned staff must be room members."),
    "invalid_thread": (400, "返信先のメッセージが正しくありません。", "Invalid thread root."),
    "unknown_reaction": (400, "このスタンプは使えません。", "Unknown reaction code."),
    "already_member": (409, "すでにメンバーです。", "Already a member."),
    "not_member": (404, "メンバーではありません。", "Not a member."),
    "last_owner": (409, "最後の管理者は外せません。", "A room needs at least one owner."),
    "managed_membership": (409, "部署・職層ルームのメンバーは組織情報から自動で決まります。",
                           "Membership of department and rank rooms follows the organisation."),
    "org_not_allowed": (403, "この団体の職員をこのルームに追加する許可がありません。",
                        "That organisation has not allowed its staff in this room."),
    "too_many_members": (400, "メンバーが多すぎます。", "Too many members."),
    "password_policy": (400, "パスワードが条件を満たしていません。", "The password does not meet the policy."),
    "login_taken": (409, "このログインIDはすでに使われています。", "That login is taken."),
    "csv_invalid": (400, "CSV ファイルを読み取れません。", "The CSV file cannot be read."),
    "invalid_cidr": (400, "IP アドレスの範囲の書き方が正しくありません。", "Invalid CIDR."),
    "invalid_transition": (409, "この状態の変更はできません。", "This status change is not possible."),
    "resync_required": (409, "最新の状態を読み込み直してください。", "Too far behind; reload the state."),
    "retention_locked": (409, "保存期間中の行政文書のため削除できません。", "This is a record within its retention period."),
    "legal_hold": (409, "訴訟ホールド等により保全中のため、削除・廃棄できません。", "A legal hold prevents this."),
    "already_marked": (409, "すでに行政文書として登録されています。", "Already marked as a record."),
    "retention_active": (409, "保存期間が満了していません。", "The retention period has not ended."),
    "disposal_not_approved": (409, "廃棄は承認されていません。", "The disposal has not been approved."),
    "conflict": (409, "ほかの変更と競合しました。もう一度お試しください。", "Conflict; please retry."),
    # issue 5: the internet relay, guests and staff phones
    "my_number_blocked": (422, "個人番号（マイナンバー）と思われる12桁の番号が含まれているため、インターネット側と共有するこのルームには送れません。",
                          "The text contains what looks like a My Number (個人番号); it cannot go to a room shared with the internet side."),
    "crossing_text_refused": (422, "このルームはインターネット側と共有されるため、タグのような文字列（< のあとに英字）や制御文字は送れません。",
                              "This room is shared with the internet side: markup-like text or control characters cannot be sent."),
    "bridge_disabled": (409, "インターネット中継サーバーとの連携が設定されていません。", "The internet relay link is not configured."),
    "guest_room_required": (409, "ゲストを招待できるのは、公開範囲が「ゲスト可」のルームだけです。",
                            "Guests can only be invited to rooms whose crossing policy is 'guests'."),
    "guest_not_found": (404, "ゲストが見つかりません。", "Guest not found."),
    "device_not_found": (404, "端末が見つかりません。", "Device not found."),
    "internal_error": (500, "サーバーで問題が起きました。管理者に連絡してください。", "Internal server error."),
}


class AppError(apperror.AppError):
    """A failure with a stable code of ``CATALOGUE``. ``detail`` carries machine-readable context (never secrets)."""

    CATALOGUE = CATALOGUE
