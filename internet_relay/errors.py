"""Stable error codes with HTTP status and messages in やさしい日本語 (plain Japanese) and English.

Guests may not read Japanese fluently: short sentences, common words, kana for hard words
(在留支援のためのやさしい日本語ガイドライン, REQUIREMENTS-JP F-49).
"""

from __future__ import annotations

from shared import apperror

CATALOGUE: dict[str, tuple[int, str, str]] = {
    "invalid_request": (400, "入力に まちがいが あります。", "The request is not valid."),
    "invalid_json": (400, "送った データの 形が ちがいます。", "The request body is not valid JSON."),
    "unsupported_media_type": (415, "送った データの 形が ちがいます。", "Unsupported content type."),
    "body_too_large": (413, "送った データが 大きすぎます。", "The request body is too large."),
    "not_authenticated": (401, "ログインして ください。", "Please log in."),
    "session_expired": (401, "時間が たったので ログアウトしました。もう一度 ログインして ください。",
                        "Your session has ended. Please log in again."),
    "invalid_credentials": (401, "ログインID か パスワード か 確認コードが ちがいます。",
                            "Wrong login ID, password or code."),
    "account_locked": (423, "何回も まちがえたので、しばらく ログインできません。あとで もう一度 ためして ください。",
                       "Too many failed attempts. Please try again later."),
    "account_disabled": (403, "このアカウントは 使えません。招待した 人に 聞いて ください。",
                         "This account cannot be used. Please ask the person who invited you."),
    "device_pending": (403, "この 端末（スマホ・パソコン）は まだ 使えません。管理者が 許可するまで 待って ください。",
                       "This device is waiting for an administrator's approval."),
    "device_revoked": (403, "この 端末（スマホ・パソコン）は 使えなく なりました。", "This device has been revoked."),
    "invite_invalid": (404, "この 招待リンクは 使えません。期限が 切れたか、もう 使われました。",
                       "This invitation link is not valid: it expired or was already used."),
    "login_taken": (409, "この ログインID は ほかの 人が 使っています。別の ID に して ください。",
                    "That login ID is taken."),
    "login_invalid": (400, "ログインID は 英数字と - _ . で、3〜64文字に して ください。",
                      "Login IDs are 3–64 letters, digits, '-', '_' or '.'."),
    "password_policy": (400, "パスワードが 短いか、かんたん すぎます。", "The password does not meet the policy."),
    "totp_invalid": (400, "確認コードが ちがいます。アプリの 新しい 6けたの 数字を 入れて ください。",
                     "The code is wrong. Enter the current 6-digit code."),
    "privacy_required": (400, "利用目的（個人情報の あつかい）を 読んで、チェックを 入れて ください。",
                         "Please read and acknowledge the privacy notice."),
    "not_approved": (403, "まだ 使えません。招待した 人が 承認するまで 待って ください。",
                     "Not approved yet. Please wait for the organisation to approve you."),
    "room_not_found": (404, "ルームが 見つかりません。", "Room not found."),
    "empty_message": (400, "メッセージが 空です。", "The message is empty."),
    "message_too_long": (400, "メッセージが 長すぎます。", "The message is too long."),
    "markup_not_allowed": (400, "「<」の すぐ あとに 英字を 書くことは できません。", "Markup-like text is not allowed."),
    "my_number_blocked": (422, "マイナンバー（個人番号）のような 12けたの 番号が あるので、送れません。番号を 消して ください。",
                          "The text contains what looks like a My Number (個人番号). Remove it."),
    "rate_limited": (429, "送るのが 速すぎます。少し 待って ください。", "Too many requests. Please wait."),
    "csrf_failed": (403, "画面を 読み込み直して、もう一度 して ください。", "Please reload the page and try again."),
    "origin_mismatch": (403, "このページからは 送れません。", "Request origin not allowed."),
    "not_found": (404, "見つかりません。", "Not found."),
    "conflict": (409, "ほかの 操作と ぶつかりました。もう一度 して ください。", "Conflict; please retry."),
    "internal_error": (500, "サーバーで 問題が 起きました。", "Internal server error."),
}


class AppError(apperror.AppError):
    """A failure with a stable code of ``CATALOGUE`` (the relay's; see ``shared.apperror``)."""

    CATALOGUE = CATALOGUE
