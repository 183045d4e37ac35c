// Message tables of the guest and staff-phone UI. Japanese in やさしい日本語 is the default (REQUIREMENTS-JP
// F-49); English is one tap away (the switch at the top) and remembered in localStorage on this device.
// Static text in index.html carries data-i18n="key" (attributes: data-i18n-attr="attr:key;…"); scripts
// use t() or setText(), which tags the element so a later switch re-translates it in place. Error
// messages from the server come in both languages (message / message_en): errorText() picks one.
// The organisation's 利用目的 notice is its own text and is shown as written (it is what the guest
// acknowledges; its hash is recorded), so the English page says so beside it.

const STORE = "kakehashi.relay.lang";
export const LANGS = ["ja", "en"];

const ja = {
  "page.title": "架け橋 チャット（ゲスト・スマホ用）",
  "lang.switch": "English",
  "lang.switchCode": "en",
  "skip": "本文へ すすむ",
  "brand": "架け橋 チャット",
  "brand.sub": "ゲスト・スマホ用",
  "logout": "ログアウト",
  "footer": "この チャットは 架け橋 中継サーバーです。メッセージは 一定の 期間の あと この サーバーから 消えます。",
  "error.generic": "エラーが 起きました。",
  "error.network": "つながりません。電波の よい ところで、もう一度 ためして ください。",
  "noAffiliation": "所属なし",
  "who": "{name}（{affiliation}）",

  "enrol.title": "利用の 登録",
  "enrol.invited": "{name} さん（{affiliation}）。{org}から 招待されました。下の 項目を 入れて、登録して ください。",
  "enrol.orgFallback": "団体",
  "enrol.privacyLegend": "個人情報の あつかい（利用目的）",
  "enrol.privacyLabel": "利用目的の お知らせ",
  "enrol.privacyNote": "この お知らせは 団体が 出した 文章です。",
  "enrol.ack": "読みました。同意します。",
  "enrol.login": "ログインID（英数字と - _ . で 3〜64文字）",
  "enrol.password": "パスワード（{min}文字 以上）",
  "enrol.totpLegend": "確認コード（2段階 認証）",
  "enrol.totpHelp": "スマホの 認証アプリ（Google Authenticator など）で、下の QRコードを 読みとって ください。",
  "enrol.totpStart": "QRコードを 出す",
  "enrol.qrAlt": "認証アプリ用の QRコード",
  "enrol.secretHelp": "読みとれない ときは、この 文字を 入れて ください：",
  "enrol.code": "アプリに 出ている 6けたの 数字",
  "enrol.submit": "登録する",
  "enrol.ackNeeded": "利用目的を 読んで、チェックを 入れて ください。",
  "enrol.done": "登録 できました。",
  "enrol.nextGuest": "招待した 職員が 承認すると 使えます。先に ログインして 待つことも できます。",
  "enrol.nextStaff": "ログインして ください。はじめての 端末は、管理者の 許可が 必要です。",
  "enrol.goLogin": "ログインする",

  "login.title": "ログイン",
  "login.id": "ログインID",
  "login.password": "パスワード",
  "login.code": "確認コード（認証アプリの 6けたの 数字）",
  "login.submit": "ログイン",
  "login.deviceWait": "この 端末（スマホ・パソコン）は まだ 使えません。管理者が 許可したら、もう一度 ログインして ください。",

  "wait.title": "承認を 待っています",
  "wait.text": "登録は 終わりました。招待した 職員が 承認すると、ルームが 見られます。この ページは そのままで 大丈夫です。",

  "rooms.title": "ルーム",
  "rooms.none": "まだ ルームが ありません。",
  "rooms.unread": "{name}（未読 {count}）",
  "room.membersButton": "メンバー",
  "room.membersLabel": "メンバー（名前と 所属）",
  "room.member": "{name}（{affiliation}）",
  "room.memberMe": "{name}（{affiliation}）・あなた",
  "room.log": "メッセージの 一覧",
  "composer.label": "メッセージ（文字だけ。ファイルは 送れません）",
  "composer.labelWithFiles": "メッセージ",
  "composer.send": "送信",
  "msg.meta": "{name}（{affiliation}） {time}",
  "msg.metaEdited": "{name}（{affiliation}） {time}（編集済み）",
  "msg.deleted": "（削除されました）",
  "msg.fileOnly": "（ファイルは LGWAN側でだけ 見られます）",
  "msg.files": "ファイル {count}件（LGWAN側でだけ 見られます）",
  "msg.read": "既読 {count}",
  "msg.unread": "未読",
  "msg.sending": "送信中…",
  "msg.refused": "送れませんでした：{reason}",

  "file.label": "ファイルを えらぶ（PDF・Word・Excel・PowerPoint・画像・テキスト）。安全に するため、ファイルは 作り直して から 届きます。",
  "file.send": "ファイルを 送る",
  "file.choose": "ファイルを えらんで ください。",
  "file.working": "ファイルを 確認して、安全な 形に 作り直して います…",
  "file.refusedFallback": "送れませんでした。",
  "file.refused": "送れませんでした：{reason}",
  "file.refusedAlert": "ファイルを 送れませんでした：{reason}",
  "file.sent": "「{name}」を 作り直して 送りました。相手に 届くと、メッセージに 出ます。",
  "file.sentRemoved": "「{name}」を 作り直して 送りました（{removed}）。相手に 届くと、メッセージに 出ます。",

  "safety.title": "安否確認",
  "safety.none": "いま 回答が 必要な 安否確認は ありません。",
  "safety.startSummary": "安否確認を 始める（LGWANが 使えない とき）",
  "safety.startHelp": "スマートフォンを 登録している 職員 全員に 送ります。LGWANに つながると、回答と いっしょに 庁内の 安否確認に 引き継がれます。",
  "safety.template": "種類",
  "safety.template.disaster": "災害発生（すべての 項目）",
  "safety.template.drill": "訓練",
  "safety.template.simple": "状況確認（本人の 状況だけ）",
  "safety.startTitle": "件名（空なら 種類の 名前）",
  "safety.startMessage": "本文（空なら ひながた）",
  "safety.startSubmit": "送る",
  "safety.condition.safe": "無事",
  "safety.condition.minor": "軽傷",
  "safety.condition.serious": "重傷",
  "safety.condition.need_help": "要支援",
  "safety.attend.yes": "参集できる",
  "safety.attend.no": "参集できない",
  "safety.attend.unknown": "未定",
  "safety.notAnswered": "まだ 回答して いません。下の ボタンを 押すと すぐ 送られます。",
  "safety.answered": "回答済み：{condition}",
  "safety.eta": "到着まで 約{minutes}分",
  "safety.sep": "・",
  "safety.answerAt": "{answer}（{time}）",
  "safety.heading": "【安否確認】{title}",
  "safety.started": "{time} 開始",
  "safety.startedRelay": "（中継サーバーで 開始）",
  "safety.closed": "・終了しました",
  "safety.closedNoAnswer": "回答 できません（終了しました）。",
  "safety.showRollup": "集計を 見る（所属ごと）",
  "safety.taps": "本人の 状況（押すと すぐ 送られます）",
  "safety.more": "くわしく 伝える（参集・到着見込み・現在地・連絡事項）",
  "safety.attendLegend": "参集",
  "safety.etaLabel": "到着見込み（分）",
  "safety.location": "現在地（例：自宅、○○小学校）",
  "safety.note": "連絡事項",
  "safety.sendDetails": "くわしい 内容を 送る",
  "safety.conditionFirst": "先に 上の ボタンで 本人の 状況を 選んで ください。",
  "safety.col.targets": "対象",
  "safety.col.answered": "回答",
  "safety.col.unanswered": "未回答",
  "safety.col.safe": "無事",
  "safety.col.minor": "軽傷",
  "safety.col.serious": "重傷",
  "safety.col.need_help": "要支援",
  "safety.col.attend_yes": "参集可",
  "safety.rollupCaption": "所属ごとの 集計（この 中継サーバーに ある 回答）",
  "safety.col.affiliation": "所属",
  "safety.total": "合計",
  "safety.summary": "回答 {answered} / {targets} 人（要支援・重傷 {attention} 人）",
  "safety.attention": "重傷・要支援の 人",
  "safety.attentionItem": "{condition}：{name}（{affiliation}）",
  "safety.remind": "未回答の 人に もう一度 知らせる",
  "safety.reminded": "{count} 人に 知らせました。",
  "safety.pleaseAnswer": "安否確認の 回答を お願いします。",
  // Why a message was refused (the relay's words, services/chat.py REFUSALS; shown from the server in Japanese).
  "refused.not_member": "この ルームの メンバーでは なくなったので、送れませんでした。",
  "refused.room_not_crossing": "この ルームは もう 使えないので、送れませんでした。",
  "refused.guest_inactive": "アカウントが 使えないので、送れませんでした。",
  "refused.room_archived": "この ルームは 終わったので、送れませんでした。",
  "refused.read_only_member": "この ルームでは 読むだけです。",
  "refused.file_refused": "ファイルを 確認 できなかったので、送れませんでした。",
  "refused.bad_author": "アカウントを 確認 できなかったので、送れませんでした。",
  "refused.author_inactive": "アカウントが 使えないので、送れませんでした。",
  "refused.mobile_not_granted": "スマートフォンでの 利用が 止められているので、送れませんでした。",
  "refused.announcement_owner_only": "この ルームでは、お知らせを 出す 人だけが 書けます。",
  "refused.invalid_thread": "返事を する メッセージが ないので、送れませんでした。",
  "refused.empty_message": "何も 書かれて いないので、送れませんでした。",
  "refused.other": "送れませんでした。",
};

const en = {
  "page.title": "Kakehashi chat (guests and phones)",
  "lang.switch": "日本語",
  "lang.switchCode": "ja",
  "skip": "Skip to the main content",
  "brand": "Kakehashi chat",
  "brand.sub": "for guests and phones",
  "logout": "Sign out",
  "footer": "This chat runs on the Kakehashi relay server. Messages are deleted from this server after a set period.",
  "error.generic": "Something went wrong.",
  "error.network": "No connection. Please try again where the signal is better.",
  "noAffiliation": "no organisation",
  "who": "{name} ({affiliation})",

  "enrol.title": "Register",
  "enrol.invited": "{name} ({affiliation}): you have been invited by {org}. Fill in the form below to register.",
  "enrol.orgFallback": "the organisation",
  "enrol.privacyLegend": "Personal information (purpose of use)",
  "enrol.privacyLabel": "Privacy notice",
  "enrol.privacyNote": "The notice below is published by the organisation in Japanese. Please read it (ask the person who invited you if you need help).",
  "enrol.ack": "I have read it and I agree.",
  "enrol.login": "Login ID (3–64 letters, digits, - _ or .)",
  "enrol.password": "Password (at least {min} characters)",
  "enrol.totpLegend": "Verification code (two-step authentication)",
  "enrol.totpHelp": "Scan the QR code below with an authenticator app on your phone (such as Google Authenticator).",
  "enrol.totpStart": "Show the QR code",
  "enrol.qrAlt": "QR code for the authenticator app",
  "enrol.secretHelp": "If you cannot scan it, enter this text in the app:",
  "enrol.code": "The 6-digit code shown in the app",
  "enrol.submit": "Register",
  "enrol.ackNeeded": "Please read the purpose of use and tick the box.",
  "enrol.done": "You are registered.",
  "enrol.nextGuest": "You can use the chat once the staff member who invited you approves you. You can sign in now and wait.",
  "enrol.nextStaff": "Please sign in. A new device needs an administrator's approval.",
  "enrol.goLogin": "Sign in",

  "login.title": "Sign in",
  "login.id": "Login ID",
  "login.password": "Password",
  "login.code": "Verification code (6 digits from the authenticator app)",
  "login.submit": "Sign in",
  "login.deviceWait": "This device (phone or computer) cannot be used yet. Sign in again after an administrator approves it.",

  "wait.title": "Waiting for approval",
  "wait.text": "Your registration is complete. You will see the rooms once the staff member who invited you approves you. You can leave this page open.",

  "rooms.title": "Rooms",
  "rooms.none": "There are no rooms yet.",
  "rooms.unread": "{name} ({count} unread)",
  "room.membersButton": "Members",
  "room.membersLabel": "Members (name and organisation)",
  "room.member": "{name} ({affiliation})",
  "room.memberMe": "{name} ({affiliation}), you",
  "room.log": "Messages",
  "composer.label": "Message (text only; files cannot be sent)",
  "composer.labelWithFiles": "Message",
  "composer.send": "Send",
  "msg.meta": "{name} ({affiliation}) {time}",
  "msg.metaEdited": "{name} ({affiliation}) {time} (edited)",
  "msg.deleted": "(deleted)",
  "msg.fileOnly": "(files can be seen only on the LGWAN side)",
  "msg.files": "{count} file(s) (can be seen only on the LGWAN side)",
  "msg.read": "Read by {count}",
  "msg.unread": "Not read yet",
  "msg.sending": "Sending…",
  "msg.refused": "Could not send: {reason}",

  "file.label": "Choose a file (PDF, Word, Excel, PowerPoint, image or text). For safety, files are rebuilt before they are delivered.",
  "file.send": "Send file",
  "file.choose": "Please choose a file.",
  "file.working": "Checking the file and rebuilding it in a safe form…",
  "file.refusedFallback": "Could not send.",
  "file.refused": "Could not send: {reason}",
  "file.refusedAlert": "The file could not be sent: {reason}",
  "file.sent": "“{name}” was rebuilt and sent. It appears among the messages once it arrives.",
  "file.sentRemoved": "“{name}” was rebuilt and sent ({removed}). It appears among the messages once it arrives.",

  "safety.title": "Safety check",
  "safety.none": "There is no safety check to answer now.",
  "safety.startSummary": "Start a safety check (when LGWAN cannot be used)",
  "safety.startHelp": "It is sent to every staff member with a registered phone. When LGWAN is reachable again, it is handed over to the office's safety check together with the answers.",
  "safety.template": "Type",
  "safety.template.disaster": "Disaster (all questions)",
  "safety.template.drill": "Drill",
  "safety.template.simple": "Status check (own condition only)",
  "safety.startTitle": "Subject (empty: the type's name)",
  "safety.startMessage": "Message (empty: the template)",
  "safety.startSubmit": "Send",
  "safety.condition.safe": "Safe",
  "safety.condition.minor": "Minor injury",
  "safety.condition.serious": "Serious injury",
  "safety.condition.need_help": "Need help",
  "safety.attend.yes": "Can come in",
  "safety.attend.no": "Cannot come in",
  "safety.attend.unknown": "Not sure",
  "safety.notAnswered": "Not answered yet. Tapping a button below sends your answer at once.",
  "safety.answered": "Answered: {condition}",
  "safety.eta": "arriving in about {minutes} min",
  "safety.sep": ", ",
  "safety.answerAt": "{answer} ({time})",
  "safety.heading": "[Safety check] {title}",
  "safety.started": "Started {time}",
  "safety.startedRelay": " (started on the relay server)",
  "safety.closed": ", closed",
  "safety.closedNoAnswer": "You can no longer answer (closed).",
  "safety.showRollup": "Show the totals (by department)",
  "safety.taps": "Your condition (tapping sends it at once)",
  "safety.more": "Tell more (coming in, arrival time, location, notes)",
  "safety.attendLegend": "Coming in",
  "safety.etaLabel": "Arrival in (minutes)",
  "safety.location": "Where you are (e.g. home, a school)",
  "safety.note": "Notes",
  "safety.sendDetails": "Send the details",
  "safety.conditionFirst": "First choose your condition with the buttons above.",
  "safety.col.targets": "Asked",
  "safety.col.answered": "Answered",
  "safety.col.unanswered": "Not answered",
  "safety.col.safe": "Safe",
  "safety.col.minor": "Minor",
  "safety.col.serious": "Serious",
  "safety.col.need_help": "Need help",
  "safety.col.attend_yes": "Can come in",
  "safety.rollupCaption": "Totals by department (answers held on this relay)",
  "safety.col.affiliation": "Department",
  "safety.total": "Total",
  "safety.summary": "{answered} of {targets} answered ({attention} need help or seriously injured)",
  "safety.attention": "People who need help or are seriously injured",
  "safety.attentionItem": "{condition}: {name} ({affiliation})",
  "safety.remind": "Remind those who have not answered",
  "safety.reminded": "Reminded {count} people.",
  "safety.pleaseAnswer": "Please answer the safety check.",
  "refused.not_member": "You are no longer a member of this room, so it was not sent.",
  "refused.room_not_crossing": "This room can no longer be used, so it was not sent.",
  "refused.guest_inactive": "Your account cannot be used, so it was not sent.",
  "refused.room_archived": "This room has been closed, so it was not sent.",
  "refused.read_only_member": "You can only read in this room.",
  "refused.file_refused": "The file could not be checked, so it was not sent.",
  "refused.bad_author": "Your account could not be confirmed, so it was not sent.",
  "refused.author_inactive": "Your account cannot be used, so it was not sent.",
  "refused.mobile_not_granted": "Phone use has been stopped for you, so it was not sent.",
  "refused.announcement_owner_only": "Only the room's owners can write in this room.",
  "refused.invalid_thread": "The message you replied to is gone, so it was not sent.",
  "refused.empty_message": "There was nothing to send.",
  "refused.other": "It was not sent.",
};

/** Both tables (the tests check they have the same keys and that index.html matches the Japanese one). */
export const MESSAGES = { ja, en };

function stored() {
  try {
    return localStorage.getItem(STORE);
  } catch (e) {
    return null;     // storage disabled: Japanese, and the choice lasts for this page only
  }
}

let lang = LANGS.includes(stored()) ? stored() : "ja";
const listeners = [];

export function getLang() {
  return lang;
}

/** The text for key in the current language, {name} placeholders filled in (Japanese if missing). */
export function t(key, vars = {}) {
  const template = MESSAGES[lang][key] ?? ja[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/** Set an element's text from the tables and remember the key, so a language switch re-translates it. */
export function setText(el, key, vars) {
  el.dataset.i18n = key;
  if (vars) el.dataset.i18nVars = JSON.stringify(vars);
  else delete el.dataset.i18nVars;
  el.textContent = t(key, vars || {});
  return el;
}

/** Translate every tagged element under root, the page title and <html lang>. */
export function apply(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    let vars = {};
    try {
      vars = el.dataset.i18nVars ? JSON.parse(el.dataset.i18nVars) : {};
    } catch (e) {
      vars = {};
    }
    el.textContent = t(el.dataset.i18n, vars);
  }
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
  document.title = t("page.title");
  document.documentElement.lang = lang;
}

export function setLang(code) {
  lang = LANGS.includes(code) ? code : "ja";
  try {
    localStorage.setItem(STORE, lang);
  } catch (e) {
    // not remembered; still switched for this page
  }
  apply();
  for (const fn of listeners) fn(lang);
}

export function onLangChange(fn) {
  listeners.push(fn);
}

/** The server's error message in the current language (the relay's catalogue has both). */
export function errorText(error, fallbackKey = "error.generic") {
  const e = error || {};
  return (lang === "en" ? e.message_en || e.message : e.message) || t(fallbackKey);
}

/** The locale for dates and times (always shown in JST). */
export function locale() {
  return lang === "ja" ? "ja-JP" : "en-GB";
}
