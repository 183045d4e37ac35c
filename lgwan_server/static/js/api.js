// The JSON API client: same-origin cookie session, X-CSRF-Token on unsafe requests, typed errors.
import { getLang, t } from "./i18n.js";

let csrfToken = "";
let unauthenticatedHandler = null;

export function setCsrf(token) {
  csrfToken = token || "";
}

export function getCsrf() {
  return csrfToken;
}

/** Called once when any request answers 401 (session expired, suspended, logged out elsewhere). */
export function onUnauthenticated(fn) {
  unauthenticatedHandler = fn;
}

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.code || `http_${status}`);
    this.status = status;
    this.code = err.code || "";
    this.detail = err.detail || {};
    this.serverMessage = { ja: err.message || "", en: err.message_en || "" };
  }

  /** A message for people, in the current language (the server's catalogue carries both). */
  get userMessage() {
    const msg = this.serverMessage[getLang()] || this.serverMessage.ja;
    return msg || t("error.generic");
  }
}

/**
 * api("GET", "/api/rooms") or api("POST", path, {json}) or api("POST", path, formData)
 * or api("POST", path, blob, {contentType: "text/csv"}).
 */
export async function api(method, path, body, options = {}) {
  const headers = { Accept: "application/json" };
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body instanceof Blob) {
    payload = body;
    headers["Content-Type"] = options.contentType || "application/octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken;
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: "same-origin", cache: "no-store" });
  } catch (exc) {
    const err = new ApiError(0, null);
    err.serverMessage = { ja: t("error.network"), en: t("error.network") };
    throw err;
  }
  const type = res.headers.get("Content-Type") || "";
  const data = type.includes("application/json") ? await res.json() : null;
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && !options.quiet401 && unauthenticatedHandler) unauthenticatedHandler(err);
    throw err;
  }
  return data;
}

export const get = (path, options) => api("GET", path, undefined, options);
export const post = (path, body, options) => api("POST", path, body, options);
export const put = (path, body, options) => api("PUT", path, body, options);
export const patch = (path, body, options) => api("PATCH", path, body, options);
export const del = (path, options) => api("DELETE", path, undefined, options);

/** A query string from an object, skipping empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}
