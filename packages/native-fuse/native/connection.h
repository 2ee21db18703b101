// Shared between clip_fuse.c (serving sessions) and connection.c (holding a connection).
#ifndef CLIP_CONNECTION_H
#define CLIP_CONNECTION_H
#include <node_api.h>

/*
 * FUSE_NOTIFY_RESEND (Linux >= 6.9, protocol 7.40): the kernel re-queues every request a
 * server read but did not answer. Debian bookworm's linux-libc-dev (6.1) lacks it; the value
 * is fixed by the kernel ABI (include/uapi/linux/fuse.h, enum fuse_notify_code).
 */
#define CLIP_FUSE_NOTIFY_RESEND 7

/** Writes a FUSE_NOTIFY_RESEND notification on a /dev/fuse descriptor; 0 or an errno. */
int clip_send_resend(int fd);

/** The external (session or holder) passed as a call's first argument, or NULL. */
void *clip_external_argument(napi_env env, napi_callback_info info);

/** Adds holdMount, connectionAlive and releaseMount to the addon's exports. */
void clip_register_connection(napi_env env, napi_value exports);

#endif
