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
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "connection.h"

/* Large enough for any request the kernel may queue first (it insists on room for a write). */
#define INIT_READ_BUFFER ((1 << 20) + 4096)
#define INIT_WAIT_MS 10000

typedef struct {
  int fd; /* -1 once released */
  char *mountpoint;
} holder_t;

extern char **environ;
static const struct fuse_lowlevel_ops no_operations = {0};

/**
 * Runs fusermount3 with `args` (NULL-terminated, without argv[0]) and one more environment
 * entry; closes `close_fd` in the child. Its exit status or -errno. posix_spawn, not fork +
 * setenv: this process has threads. Inherited descriptors without FD_CLOEXEC stay open.
 */
static int run_fusermount(const char *const *args, const char *extra_env, int close_fd) {
  const char *argv[8] = {"fusermount3"};
  for (int i = 0; args[i] && i < 6; i++) argv[i + 1] = args[i];
  size_t count = 0;
  while (environ[count]) count++;
  const char **envp = calloc(count + 2, sizeof *envp);
  if (!envp) return -ENOMEM;
  memcpy(envp, environ, count * sizeof *envp);
  envp[count] = extra_env;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (close_fd >= 0) posix_spawn_file_actions_addclose(&actions, close_fd);
  // Node marks its stdio close-on-exec: hand fusermount3 copies, so its messages reach stderr.
  int stdio[3];
  for (int i = 0; i < 3; i++) {
    stdio[i] = fcntl(i, F_DUPFD, 10);
    if (stdio[i] >= 0) posix_spawn_file_actions_adddup2(&actions, stdio[i], i);
  }
  for (int i = 0; i < 3; i++)
    if (stdio[i] >= 0) posix_spawn_file_actions_addclose(&actions, stdio[i]);
  pid_t pid;
  int err = posix_spawnp(&pid, "fusermount3", &actions, NULL, (char *const *)argv, (char *const *)envp);
  posix_spawn_file_actions_destroy(&actions);
  for (int i = 0; i < 3; i++)
    if (stdio[i] >= 0) close(stdio[i]);
  free(envp);
  if (err) return -err;
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -errno;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/** The descriptor sent with SCM_RIGHTS on `sock`, or -1. */
static int receive_fd(int sock) {
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  if (!cmsg || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
  return fd;
}

/**
 * Without root: Debian fuse3's setuid fusermount3 opens /dev/fuse (often root-only inside
 * containers), mounts, and sends the descriptor back over a socket named by _FUSE_COMMFD, the
 * protocol libfuse uses. We speak it ourselves because libfuse only falls back to fusermount3
 * when it could open /dev/fuse itself. fusermount3 enforces /etc/fuse.conf (allow_other needs
 * user_allow_other) and explains refusals on stderr.
 */
static int mount_with_fusermount(const char *mountpoint, const char *options) {
  int sockets[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sockets) != 0) return -1;
  char env[32];
  snprintf(env, sizeof env, "_FUSE_COMMFD=%d", sockets[0]);
  const char *args[] = {"-o", options, "--", mountpoint, NULL};
  const char *no_options[] = {"--", mountpoint, NULL};
  // fusermount3 sends the descriptor and exits; the socket keeps it until we receive it.
  int status = run_fusermount(options[0] ? args : no_options, env, sockets[1]);
  close(sockets[0]);
  int fd = status == 0 ? receive_fd(sockets[1]) : -1;
  close(sockets[1]);
  return fd;
}

/** Mounts and returns the /dev/fuse descriptor, or -1 (libfuse or fusermount3 said why on stderr). */
static int mount_connection(const char *mountpoint, char *options) {
  if (geteuid() != 0) return mount_with_fusermount(mountpoint, options);
  char *fuse_argv[] = {"clip", "-o", options, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(options[0] ? 3 : 1, fuse_argv);
  struct fuse_session *se = fuse_session_new(&args, &no_operations, sizeof no_operations, NULL);
  if (!se) return -1;
  if (fuse_session_mount(se, mountpoint) != 0) {
    fuse_session_destroy(se);
    return -1;
  }
  // The session only mounted (mount(2) with libfuse's option handling); keep its descriptor.
  int fd = fcntl(fuse_session_fd(se), F_DUPFD_CLOEXEC, 3);
  fuse_session_destroy(se);
  if (fd < 0) umount2(mountpoint, MNT_DETACH);
  return fd;
}

/** Lazily detaches the mount: umount2 as root, fusermount3 -u -z otherwise. */
static void detach_mount(const char *mountpoint) {
  if (geteuid() == 0 && umount2(mountpoint, MNT_DETACH) == 0) return;
  const char *args[] = {"-u", "-q", "-z", "--", mountpoint, NULL};
  run_fusermount(args, NULL, -1);
}

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

  holder_t *h = calloc(1, sizeof *h);
  if (!h || !(h->mountpoint = strdup(mountpoint))) return free(h), throw_message(env, "CLIP_FUSE_NOMEM", "out of memory");
  h->fd = mount_connection(mountpoint, options);
  if (h->fd < 0) {
    free(h->mountpoint);
    free(h);
    return throw_message(env, "CLIP_FUSE_MOUNT",
                         geteuid() == 0 ? "mount failed (see stderr)" : "fusermount3 could not mount (see its message above; Debian package fuse3)");
  }
  uint8_t *buffer = malloc(INIT_READ_BUFFER);
  ssize_t n = buffer ? read_init(h->fd, buffer) : -ENOMEM;
  if (n < 0) {
    free(buffer);
    close(h->fd);
    detach_mount(h->mountpoint);
    free(h->mountpoint);
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

void *clip_external_argument(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *pointer = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return NULL;
  napi_get_value_external(env, argv[0], &pointer);
  return pointer;
}

static holder_t *holder_of_call(napi_env env, napi_callback_info info) { return clip_external_argument(env, info); }

/** connectionAlive(holder) → false once the kernel ended the connection (unmounted or aborted). */
static napi_value js_connection_alive(napi_env env, napi_callback_info info) {
  holder_t *h = holder_of_call(env, info);
  int alive = 0;
  if (h && h->fd >= 0) {
    struct pollfd pfd = {.fd = h->fd, .events = 0};
    alive = !(poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLERR | POLLNVAL)));
  }
  napi_value value;
  napi_get_boolean(env, alive, &value);
  return value;
}

/**
 * releaseMount(holder): closes the descriptor and lazily detaches the mount if the connection
 * is still alive (umount2 MNT_DETACH as root, fusermount3 -u -z otherwise). With no
 * server holding the descriptor either, closing it aborts the connection.
 */
static napi_value js_release_mount(napi_env env, napi_callback_info info) {
  holder_t *h = holder_of_call(env, info);
  if (h && h->fd >= 0) {
    struct pollfd pfd = {.fd = h->fd, .events = 0};
    int ended = poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR);
    // Close first: a synchronous unmount could otherwise wait on this very connection.
    close(h->fd);
    h->fd = -1;
    if (!ended) detach_mount(h->mountpoint);
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
