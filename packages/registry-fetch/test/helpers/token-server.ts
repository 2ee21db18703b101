// Moved to the test kit (also used by the cli's long-lived mount tests).
export { startTokenServer, type TokenServer } from '@clip/testkit';
