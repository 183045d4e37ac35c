// Per-browser preferences (language, Enter behaviour, notifications) in localStorage.
const KEY = "kakehashi.prefs";
const DEFAULTS = { lang: "ja", enterSends: true, notify: "mentions" };

export function loadPrefs() {
  try {
    return { ...DEFAULTS, ...JSON.parse(localStorage.getItem(KEY) || "{}") };
  } catch {
    return { ...DEFAULTS };
  }
}

export function savePrefs(changes) {
  const next = { ...loadPrefs(), ...changes };
  try {
    localStorage.setItem(KEY, JSON.stringify(next));
  } catch {
    // private mode or storage disabled: preferences last for this page only
  }
  return next;
}
