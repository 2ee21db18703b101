// Holding a FUSE connection so that it outlives the process serving it.
//
// A holder mounts (mount(2) as root, libfuse's fusermount3 otherwise), reads the kernel's
// FUSE_INIT request off the new connection and keeps both: the /dev/fuse descriptor and the
// INIT bytes. It never serves anything. As long as it keeps the descriptor open, the kernel
// keeps the connection alive when a serving process dies (SIGKILL, OOM, crash): requests the
// dead server had read stay on the device's processing list, new ones queue, readers wait.
// A fresh server inherits the descriptor, replays the INIT bytes into its own libfuse session
// (see attach_session in clip_fuse.c) and sends FUSE_NOTIFY_RESEND: the kernel re-queues every
// request that was read but never answered, and the new server answers them.
#define FUSE_USE_VERSION 34
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <node_api.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connection.h"

/* Large enough for any request the kernel may queue first (it insists on room for a write). */
#define INIT_READ_BUFFER ((1 << 20) + 4096)
#define INIT_WAIT_MS 10000

typedef struct {
  struct fuse_session *se;
  int fd;
} holder_t;

static const struct fuse_lowlevel_ops no_operations = {0};

int clip_send_resend(int fd) {
  struct fuse_out_header header = {.len = sizeof header, .error = CLIP_FUSE_NOTIFY_RESEND, .unique = 0};
  return write(fd, &header, sizeof header) == (ssize_t)sizeof header ? 0 : errno;
}

static napi_value throw_message(napi_env env, const char *code, const char *message) {
  napi_throw_error(env, code, message);
  return NULL;
}

/** Reads the FUSE_INIT request the kernel queues right after mounting; its length or -errno. */
static ssize_t read_init(int fd, uint8_t *buffer) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  int ready = poll(&pfd, 1, INIT_WAIT_MS);
  if (ready <= 0) return ready == 0 ? -ETIMEDOUT : -errno;
  ssize_t n;
  do n = read(fd, buffer, INIT_READ_BUFFER);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  if ((size_t)n < sizeof(struct fuse_in_header) + sizeof(struct fuse_init_in)) return -EPROTO;
  if (((struct fuse_in_header *)buffer)->opcode != FUSE_INIT) return -EPROTO;
  return n;
}

/**
 * holdMount(mountpoint, options) → { holder, fd, init: Buffer }. Mounts (root: mount(2);
 * otherwise fusermount3) and takes the INIT request off the connection.
 */
static napi_value js_hold_mount(napi_env env, napi_callback_info info) {
  size_t argc = 2, len = 0;
  napi_value argv[2];
  char mountpoint[4096], options[4096];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return throw_message(env, "CLIP_FUSE_ARGS", "holdMount(mountpoint, options)");
  napi_get_value_string_utf8(env, argv[0], mountpoint, sizeof mountpoint, &len);
  napi_get_value_string_utf8(env, argv[1], options, sizeof options, &len);

  char *fuse_argv[] = {"clip", "-o", options, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(options[0] ? 3 : 1, fuse_argv);
  holder_t *h = calloc(1, sizeof *h);
  if (!h) return throw_message(env, "CLIP_FUSE_NOMEM", "out of memory");
  h->se = fuse_session_new(&args, &no_operations, sizeof no_operations, NULL);
  if (!h->se) {
    free(h);
    return throw_message(env, "CLIP_FUSE_OPTIONS", "libfuse refused the mount options (see stderr)");
  }
  if (fuse_session_mount(h->se, mountpoint) != 0) {
    fuse_session_destroy(h->se);
    free(h);
    return throw_message(env, "CLIP_FUSE_MOUNT", "mount failed (see stderr; needs root or fusermount3 from Debian fuse3)");
  }
  h->fd = fuse_session_fd(h->se);
  uint8_t *buffer = malloc(INIT_READ_BUFFER);
  ssize_t n = buffer ? read_init(h->fd, buffer) : -ENOMEM;
  if (n < 0) {
    free(buffer);
    fuse_session_unmount(h->se);
    fuse_session_destroy(h->se);
    free(h);
    char message[160];
    snprintf(message, sizeof message, "no FUSE_INIT from the kernel after mounting (%s)", strerror((int)-n));
    return throw_message(env, "CLIP_FUSE_INIT", message);
  }

  napi_value result, external, fd, init;
  void *init_data;
  napi_create_object(env, &result);
  napi_create_external(env, h, NULL, NULL, &external);
  napi_create_int32(env, h->fd, &fd);
  napi_create_buffer_copy(env, (size_t)n, buffer, &init_data, &init);
  free(buffer);
  napi_set_named_property(env, result, "holder", external);
  napi_set_named_property(env, result, "fd", fd);
  napi_set_named_property(env, result, "init", init);
  return result;
}

static holder_t *holder_of_call(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  holder_t *h = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return NULL;
  napi_get_value_external(env, argv[0], (void **)&h);
  return h;
}

/** connectionAlive(holder) → false once the kernel ended the connection (unmounted or aborted). */
static napi_value js_connection_alive(napi_env env, napi_callback_info info) {
  holder_t *h = holder_of_call(env, info);
  int alive = 0;
  if (h && h->se) {
    struct pollfd pfd = {.fd = h->fd, .events = 0};
    alive = !(poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLERR | POLLNVAL)));
  }
  napi_value value;
  napi_get_boolean(env, alive, &value);
  return value;
}

/**
 * releaseMount(holder): closes the descriptor and lazily detaches the mount if the connection
 * is still alive (libfuse: umount2 MNT_DETACH as root, fusermount3 -u -z otherwise). With no
 * server holding the descriptor either, closing it aborts the connection.
 */
static napi_value js_release_mount(napi_env env, napi_callback_info info) {
  holder_t *h = holder_of_call(env, info);
  if (h && h->se) {
    fuse_session_unmount(h->se);
    fuse_session_destroy(h->se);
    h->se = NULL;
    h->fd = -1;
  }
  return NULL;
}

void clip_register_connection(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"holdMount", NULL, js_hold_mount, NULL, NULL, NULL, napi_default, NULL},
      {"connectionAlive", NULL, js_connection_alive, NULL, NULL, NULL, napi_default, NULL},
      {"releaseMount", NULL, js_release_mount, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
}
