// The shared state of the signed-in app: who I am and my rooms. app.js owns and mutates it.
export const state = {
  me: null,            // /api/auth/me
  rooms: new Map(),    // room id -> room summary from /api/rooms (kept live by events)
  currentRoomId: null,
  roomView: null,      // the open RoomView
  threadView: null,    // the open ThreadView (side panel)
  prefs: null,
  memberCache: new Map(), // room id -> Promise<members[]>
  cardCache: new Map(),   // staff id -> Promise<card>
};

export function isAdmin() {
  return ["org_admin", "server_admin"].includes(state.me?.role);
}

export function canAudit() {
  return ["org_admin", "server_admin", "auditor"].includes(state.me?.role);
}
