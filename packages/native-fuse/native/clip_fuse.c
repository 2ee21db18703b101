// A read-only FUSE filesystem on libfuse 3's low-level API, for the clip mounter.
//
// Metadata is a static table handed over once at mount time (the image never changes), so
// lookup, getattr, readdir(plus), readlink, xattrs, open and statfs are answered here on the
// FUSE thread without entering JavaScript. Only `read` goes to JS (through a thread-safe
// function); JS answers it later with reply(), from its own thread, which libfuse allows.
//
// Why not fuse-native: it wraps libfuse 2's high-level, path-based API, where every entry of a
// `find` costs separate lookup and getattr round trips through the JS thread and readdirplus
// does not exist.
//
// Table layout (all arrays indexed by inode number - 1, inode 1 = root; see src/table.ts):
//   attrs    Float64 × ATTR_STRIDE : mode uid gid size nlink rdev mtimeSec mtimeNsec blocks
//   index    Uint32 × INDEX_STRIDE : parent childStart childCount linkOff linkLen xattrStart xattrCount
//   children Uint32 × CHILD_STRIDE : nameOff nameLen ino, each directory's run sorted by name bytes
//   xattrs   Uint32 × XATTR_STRIDE : nameOff nameLen valueOff valueLen
//   blob     bytes the offsets point into; names and link targets are followed by a NUL byte
//
// Over 400 lines on purpose: the low-level ops over one table and their N-API glue share its
// types and locks; holding a connection apart from its server is already in connection.c.
#define FUSE_USE_VERSION 34
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "connection.h"

#define ATTR_STRIDE 9
#define INDEX_STRIDE 7
#define CHILD_STRIDE 3
#define XATTR_STRIDE 4

enum { A_MODE, A_UID, A_GID, A_SIZE, A_NLINK, A_RDEV, A_MTIME_SEC, A_MTIME_NSEC, A_BLOCKS };
enum { I_PARENT, I_CHILD_START, I_CHILD_COUNT, I_LINK_OFF, I_LINK_LEN, I_XATTR_START, I_XATTR_COUNT };
enum { COUNT_LOOKUP, COUNT_GETATTR, COUNT_READDIR, COUNT_OPEN, COUNT_READ, COUNT_XATTR, COUNT_MAX };

typedef struct {
  struct fuse_session *se;
  pthread_t thread;
  int thread_started;
  int joined;
  napi_threadsafe_function tsfn;
  char *mountpoint;
  uint32_t inode_count;
  double *attrs;
  uint32_t *index;
  uint32_t *children;
  size_t children_count;
  uint32_t *xattrs;
  size_t xattr_count;
  uint8_t *blob;
  size_t blob_len;
  struct statvfs statfs;
  double timeout;
  int resend_error; /* attached sessions: errno of FUSE_NOTIFY_RESEND, 0 when it worked */
  atomic_uint_fast64_t counters[COUNT_MAX];
} session_t;

/** What the FUSE thread hands to JS: a read to serve, or the end of the session loop. */
typedef struct {
  int kind; /* 0 = read, 1 = loop ended */
  fuse_req_t req;
  uint64_t ino;
  int64_t offset;
  uint64_t size;
  int result;
} event_t;

/* ---- table access ----------------------------------------------------------------------- */

static int valid_ino(session_t *s, fuse_ino_t ino) { return ino >= 1 && ino <= s->inode_count; }
static const double *attrs_of(session_t *s, fuse_ino_t ino) { return s->attrs + (size_t)(ino - 1) * ATTR_STRIDE; }
static const uint32_t *index_of(session_t *s, fuse_ino_t ino) { return s->index + (size_t)(ino - 1) * INDEX_STRIDE; }
static int is_dir(session_t *s, fuse_ino_t ino) { return S_ISDIR((mode_t)attrs_of(s, ino)[A_MODE]); }

static void fill_stat(session_t *s, fuse_ino_t ino, struct stat *st) {
  const double *a = attrs_of(s, ino);
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_mode = (mode_t)a[A_MODE];
  st->st_uid = (uid_t)a[A_UID];
  st->st_gid = (gid_t)a[A_GID];
  st->st_size = (off_t)a[A_SIZE];
  st->st_nlink = (nlink_t)a[A_NLINK];
  st->st_rdev = (dev_t)a[A_RDEV];
  st->st_blksize = 4096;
  st->st_blocks = (blkcnt_t)a[A_BLOCKS];
  st->st_mtim.tv_sec = (time_t)a[A_MTIME_SEC];
  st->st_mtim.tv_nsec = (long)a[A_MTIME_NSEC];
  st->st_atim = st->st_mtim;
  st->st_ctim = st->st_mtim;
}

static void fill_entry(session_t *s, fuse_ino_t ino, struct fuse_entry_param *e) {
  memset(e, 0, sizeof *e);
  e->ino = ino;
  e->generation = 1;
  e->attr_timeout = s->timeout;
  e->entry_timeout = s->timeout;
  fill_stat(s, ino, &e->attr);
}

static int compare_name(const uint8_t *a, size_t alen, const char *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = memcmp(a, b, n);
  if (c != 0) return c;
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/** The child of directory `parent` called `name`, or 0. Children are sorted by name bytes. */
static fuse_ino_t find_child(session_t *s, fuse_ino_t parent, const char *name) {
  const uint32_t *ix = index_of(s, parent);
  size_t lo = ix[I_CHILD_START], hi = lo + ix[I_CHILD_COUNT], len = strlen(name);
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const uint32_t *c = s->children + mid * CHILD_STRIDE;
    int cmp = compare_name(s->blob + c[0], c[1], name, len);
    if (cmp == 0) return c[2];
    if (cmp < 0) lo = mid + 1;
    else hi = mid;
  }
  return 0;
}

/* ---- operations ------------------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn) {
  (void)userdata;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  // Always readdirplus: `find`/`ls -l` then need no lookup per entry.
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  conn->time_gran = 1;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  session_t *s = fuse_req_userdata(req);
  atomic_fetch_add(&s->counters[COUNT_LOOKUP], 1);
  if (!valid_ino(s, parent)) return (void)fuse_reply_err(req, ENOENT);
  if (!is_dir(s, parent)) return (void)fuse_reply_err(req, ENOTDIR);
  struct fuse_entry_param e;
  fuse_ino_t ino = find_child(s, parent, name);
  if (ino && valid_ino(s, ino)) {
    fill_entry(s, ino, &e);
  } else {
    // A negative entry with a timeout: the kernel remembers that the name does not exist.
    memset(&e, 0, sizeof e);
    e.entry_timeout = s->timeout;
  }
  fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  session_t *s = fuse_req_userdata(req);
  atomic_fetch_add(&s->counters[COUNT_GETATTR], 1);
  if (!valid_ino(s, ino)) return (void)fuse_reply_err(req, ENOENT);
  struct stat st;
  fill_stat(s, ino, &st);
  fuse_reply_attr(req, &st, s->timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  session_t *s = fuse_req_userdata(req);
  if (!valid_ino(s, ino)) return (void)fuse_reply_err(req, ENOENT);
  if (!S_ISLNK((mode_t)attrs_of(s, ino)[A_MODE])) return (void)fuse_reply_err(req, EINVAL);
  fuse_reply_readlink(req, (const char *)s->blob + index_of(s, ino)[I_LINK_OFF]);
}

/*
 * open and opendir answer ENOSYS once: the kernel then opens every file and directory itself
 * without asking (no open/release round trips), keeping page cache and cached listings
 * (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR is its default then). Writes never get this far: the
 * mount is read-only.
 */
static void op_open_without_handle(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  session_t *s = fuse_req_userdata(req);
  atomic_fetch_add(&s->counters[COUNT_OPEN], 1);
  fuse_reply_err(req, ENOSYS);
}

/** readdir and readdirplus: offsets 0 and 1 are "." and "..", then the children in order. */
static void list_directory(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, int plus) {
  session_t *s = fuse_req_userdata(req);
  atomic_fetch_add(&s->counters[COUNT_READDIR], 1);
  if (!valid_ino(s, ino)) return (void)fuse_reply_err(req, ENOENT);
  if (!is_dir(s, ino)) return (void)fuse_reply_err(req, ENOTDIR);
  const uint32_t *ix = index_of(s, ino);
  size_t count = (size_t)ix[I_CHILD_COUNT] + 2;
  char *buf = malloc(size);
  if (!buf) return (void)fuse_reply_err(req, ENOMEM);
  size_t used = 0;
  for (size_t i = (size_t)offset; i < count; i++) {
    const char *name;
    fuse_ino_t child;
    if (i == 0) {
      name = ".";
      child = ino;
    } else if (i == 1) {
      name = "..";
      child = ix[I_PARENT] ? ix[I_PARENT] : ino;
    } else {
      const uint32_t *c = s->children + ((size_t)ix[I_CHILD_START] + i - 2) * CHILD_STRIDE;
      name = (const char *)s->blob + c[0];
      child = c[2];
    }
    if (!valid_ino(s, child)) continue;
    size_t room = size - used, needed;
    if (plus) {
      struct fuse_entry_param e;
      fill_entry(s, child, &e);
      needed = fuse_add_direntry_plus(req, buf + used, room, name, &e, (off_t)(i + 1));
    } else {
      struct stat st;
      fill_stat(s, child, &st);
      needed = fuse_add_direntry(req, buf + used, room, name, &st, (off_t)(i + 1));
    }
    if (needed > room) break;
    used += needed;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  list_directory(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  list_directory(req, ino, size, off, 1);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  session_t *s = fuse_req_userdata(req);
  atomic_fetch_add(&s->counters[COUNT_READ], 1);
  if (!valid_ino(s, ino)) return (void)fuse_reply_err(req, ENOENT);
  const double *a = attrs_of(s, ino);
  if (!S_ISREG((mode_t)a[A_MODE])) return (void)fuse_reply_err(req, EINVAL);
  double file_size = a[A_SIZE];
  if (off < 0 || (double)off >= file_size || size == 0) return (void)fuse_reply_buf(req, NULL, 0);
  if ((double)off + (double)size > file_size) size = (size_t)(file_size - (double)off);
  event_t *event = calloc(1, sizeof *event);
  if (!event) return (void)fuse_reply_err(req, ENOMEM);
  event->kind = 0;
  event->req = req;
  event->ino = ino;
  event->offset = off;
  event->size = size;
  if (napi_call_threadsafe_function(s->tsfn, event, napi_tsfn_nonblocking) != napi_ok) {
    free(event);
    fuse_reply_err(req, EIO);
  }
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  session_t *s = fuse_req_userdata(req);
  atomic_fetch_add(&s->counters[COUNT_XATTR], 1);
  if (!valid_ino(s, ino)) return (void)fuse_reply_err(req, ENOENT);
  const uint32_t *ix = index_of(s, ino);
  size_t len = strlen(name);
  for (uint32_t i = 0; i < ix[I_XATTR_COUNT]; i++) {
    const uint32_t *x = s->xattrs + ((size_t)ix[I_XATTR_START] + i) * XATTR_STRIDE;
    if (compare_name(s->blob + x[0], x[1], name, len) != 0) continue;
    if (size == 0) return (void)fuse_reply_xattr(req, x[3]);
    if (size < x[3]) return (void)fuse_reply_err(req, ERANGE);
    return (void)fuse_reply_buf(req, (const char *)s->blob + x[2], x[3]);
  }
  fuse_reply_err(req, ENODATA);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  session_t *s = fuse_req_userdata(req);
  atomic_fetch_add(&s->counters[COUNT_XATTR], 1);
  if (!valid_ino(s, ino)) return (void)fuse_reply_err(req, ENOENT);
  const uint32_t *ix = index_of(s, ino);
  size_t total = 0;
  for (uint32_t i = 0; i < ix[I_XATTR_COUNT]; i++) total += s->xattrs[((size_t)ix[I_XATTR_START] + i) * XATTR_STRIDE + 1] + 1;
  if (size == 0) return (void)fuse_reply_xattr(req, total);
  if (size < total) return (void)fuse_reply_err(req, ERANGE);
  char *buf = malloc(total ? total : 1);
  if (!buf) return (void)fuse_reply_err(req, ENOMEM);
  size_t used = 0;
  for (uint32_t i = 0; i < ix[I_XATTR_COUNT]; i++) {
    const uint32_t *x = s->xattrs + ((size_t)ix[I_XATTR_START] + i) * XATTR_STRIDE;
    memcpy(buf + used, s->blob + x[0], x[1]);
    used += x[1];
    buf[used++] = '\0';
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  session_t *s = fuse_req_userdata(req);
  fuse_reply_statfs(req, &s->statfs);
}

static const struct fuse_lowlevel_ops operations = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .open = op_open_without_handle,
    .read = op_read,
    .opendir = op_open_without_handle,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
};

/* ---- session thread and JS bridge ------------------------------------------------------- */

static void *session_loop(void *arg) {
  session_t *s = arg;
  int result = fuse_session_loop(s->se);
  event_t *event = calloc(1, sizeof *event);
  if (event) {
    event->kind = 1;
    event->result = result;
    napi_call_threadsafe_function(s->tsfn, event, napi_tsfn_blocking);
  }
  return NULL;
}

/** Runs on the JS thread: onEvent(kind, request, ino, offset, size | result). */
static void call_js(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  event_t *event = data;
  if (!event) return;
  if (env == NULL || callback == NULL) {
    // Tearing down: nobody will answer this read.
    if (event->kind == 0) fuse_reply_err(event->req, EIO);
    free(event);
    return;
  }
  napi_value argv[5];
  napi_create_int32(env, event->kind, &argv[0]);
  napi_create_double(env, (double)(uintptr_t)event->req, &argv[1]);
  napi_create_double(env, (double)event->ino, &argv[2]);
  napi_create_double(env, (double)event->offset, &argv[3]);
  napi_create_double(env, event->kind == 0 ? (double)event->size : (double)event->result, &argv[4]);
  free(event);
  napi_value global;
  napi_get_global(env, &global);
  napi_call_function(env, global, callback, 5, argv, NULL);
}

/** Frees the table; the struct itself stays (a JS external may still point at it). */
static void free_tables(session_t *s) {
  free(s->mountpoint);
  free(s->attrs);
  free(s->index);
  free(s->children);
  free(s->xattrs);
  free(s->blob);
  s->mountpoint = NULL;
  s->attrs = NULL;
  s->index = NULL;
  s->children = NULL;
  s->xattrs = NULL;
  s->blob = NULL;
}

static void free_session(session_t *s) {
  free_tables(s);
  free(s);
}

#define CHECK(call)                                                                   \
  do {                                                                                \
    if ((call) != napi_ok) {                                                          \
      napi_throw_error(env, "CLIP_FUSE_NAPI", "N-API call failed: " #call);           \
      return NULL;                                                                    \
    }                                                                                 \
  } while (0)

static int copy_typed(napi_env env, napi_value value, napi_typedarray_type want, size_t elem, void **out, size_t *count) {
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value buffer;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, &buffer, &offset) != napi_ok || type != want) return -1;
  *out = malloc(length * elem + 1);
  if (!*out) return -1;
  if (length) memcpy(*out, data, length * elem);
  *count = length;
  return 0;
}

/**
 * Serves a connection a holder mounted (connection.c) instead of mounting: libfuse takes an
 * open /dev/fuse descriptor as "/dev/fd/N". That connection has already done FUSE_INIT, and
 * libfuse answers EIO to everything until its session has seen one, so the holder's copy of
 * the kernel's INIT is replayed: libfuse negotiates exactly what the first server did (same
 * request, same operations) and marks itself initialized. Its reply carries the INIT's unique;
 * the kernel answers ENOENT unless nobody answered that INIT yet (libfuse ignores ENOENT), so
 * the first server and every later one run the same code. Then FUSE_NOTIFY_RESEND re-queues
 * what a dead predecessor had read but not answered: after the INIT reply, never before.
 */
static int attach_session(session_t *s, int fd, const void *init, size_t init_len) {
  char path[32];
  snprintf(path, sizeof path, "/dev/fd/%d", fd);
  // Children of this process (fusermount3 on unmount) must not keep the connection alive.
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (fuse_session_mount(s->se, path) != 0) return -1;
  struct fuse_buf buf = {.size = init_len, .mem = (void *)init};
  fuse_session_process_buf(s->se, &buf);
  s->resend_error = clip_send_resend(fd);
  return 0;
}

static napi_value get_property(napi_env env, napi_value object, const char *name) {
  napi_value value = NULL;
  napi_get_named_property(env, object, name, &value);
  return value;
}

static void throw_errno(napi_env env, const char *code, const char *message) {
  napi_throw_error(env, code, message);
}

/**
 * mount(mountpoint, options, table, statfs: Float64Array(11), timeoutSeconds, onEvent,
 * attach?: { fd, init: Uint8Array }) → session. With `attach`, serves a held connection
 * (see attach_session) instead of mounting. Throws when the table is malformed or the mount fails.
 */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) return throw_errno(env, "CLIP_FUSE_ARGS", "mount(mountpoint, options, table, statfs, timeout, onEvent)"), NULL;
  int attach_fd = -1;
  void *init_data = NULL;
  size_t init_len = 0;
  napi_valuetype attach_type = napi_undefined;
  if (argc >= 7) napi_typeof(env, argv[6], &attach_type);
  if (attach_type == napi_object) {
    napi_typedarray_type init_type;
    napi_value init_buffer;
    size_t init_offset;
    if (napi_get_value_int32(env, get_property(env, argv[6], "fd"), &attach_fd) != napi_ok || attach_fd < 0 ||
        napi_get_typedarray_info(env, get_property(env, argv[6], "init"), &init_type, &init_len, &init_data, &init_buffer, &init_offset) != napi_ok ||
        init_type != napi_uint8_array || init_len == 0)
      return throw_errno(env, "CLIP_FUSE_ARGS", "attach must be { fd: number, init: Uint8Array }"), NULL;
  }

  session_t *s = calloc(1, sizeof *s);
  if (!s) return throw_errno(env, "CLIP_FUSE_NOMEM", "out of memory"), NULL;
  size_t len = 0;
  char options[4096];
  napi_get_value_string_utf8(env, argv[0], NULL, 0, &len);
  s->mountpoint = malloc(len + 1);
  napi_get_value_string_utf8(env, argv[0], s->mountpoint, len + 1, &len);
  napi_get_value_string_utf8(env, argv[1], options, sizeof options, &len);

  size_t attrs_len, index_len, blob_len;
  napi_value table = argv[2];
  if (copy_typed(env, get_property(env, table, "attrs"), napi_float64_array, 8, (void **)&s->attrs, &attrs_len) ||
      copy_typed(env, get_property(env, table, "index"), napi_uint32_array, 4, (void **)&s->index, &index_len) ||
      copy_typed(env, get_property(env, table, "children"), napi_uint32_array, 4, (void **)&s->children, &s->children_count) ||
      copy_typed(env, get_property(env, table, "xattrs"), napi_uint32_array, 4, (void **)&s->xattrs, &s->xattr_count) ||
      copy_typed(env, get_property(env, table, "blob"), napi_uint8_array, 1, (void **)&s->blob, &blob_len) ||
      attrs_len % ATTR_STRIDE || index_len != attrs_len / ATTR_STRIDE * INDEX_STRIDE || attrs_len == 0) {
    free_session(s);
    return throw_errno(env, "CLIP_FUSE_TABLE", "malformed metadata table"), NULL;
  }
  s->inode_count = (uint32_t)(attrs_len / ATTR_STRIDE);
  s->children_count /= CHILD_STRIDE;
  s->xattr_count /= XATTR_STRIDE;
  s->blob_len = blob_len;

  double *statfs;
  size_t statfs_len;
  if (copy_typed(env, argv[3], napi_float64_array, 8, (void **)&statfs, &statfs_len) || statfs_len < 11) {
    free_session(s);
    return throw_errno(env, "CLIP_FUSE_ARGS", "statfs must be a Float64Array of 11 values"), NULL;
  }
  s->statfs.f_bsize = (unsigned long)statfs[0];
  s->statfs.f_frsize = (unsigned long)statfs[1];
  s->statfs.f_blocks = (fsblkcnt_t)statfs[2];
  s->statfs.f_bfree = (fsblkcnt_t)statfs[3];
  s->statfs.f_bavail = (fsblkcnt_t)statfs[4];
  s->statfs.f_files = (fsfilcnt_t)statfs[5];
  s->statfs.f_ffree = (fsfilcnt_t)statfs[6];
  s->statfs.f_favail = (fsfilcnt_t)statfs[7];
  s->statfs.f_fsid = (unsigned long)statfs[8];
  s->statfs.f_flag = (unsigned long)statfs[9];
  s->statfs.f_namemax = (unsigned long)statfs[10];
  free(statfs);
  napi_get_value_double(env, argv[4], &s->timeout);

  napi_value name;
  napi_create_string_utf8(env, "clip-fuse", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[5], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &s->tsfn) != napi_ok) {
    free_session(s);
    return throw_errno(env, "CLIP_FUSE_NAPI", "cannot create the thread-safe function"), NULL;
  }

  char *fuse_argv[] = {"clip", "-o", options, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(options[0] ? 3 : 1, fuse_argv);
  s->se = fuse_session_new(&args, &operations, sizeof operations, s);
  if (!s->se) {
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    free_session(s);
    return throw_errno(env, "CLIP_FUSE_OPTIONS", "libfuse refused the mount options (see stderr)"), NULL;
  }
  if ((attach_fd >= 0 ? attach_session(s, attach_fd, init_data, init_len) : fuse_session_mount(s->se, s->mountpoint)) != 0) {
    fuse_session_destroy(s->se);
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    free_session(s);
    return throw_errno(env, "CLIP_FUSE_MOUNT", "mount failed (see stderr; needs root or fusermount3)"), NULL;
  }
  if (pthread_create(&s->thread, NULL, session_loop, s) != 0) {
    fuse_session_unmount(s->se);
    fuse_session_destroy(s->se);
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    free_session(s);
    return throw_errno(env, "CLIP_FUSE_THREAD", "cannot start the FUSE thread"), NULL;
  }
  s->thread_started = 1;

  napi_value external;
  CHECK(napi_create_external(env, s, NULL, NULL, &external));
  return external;
}

/** The session passed as a call's first argument (NULL when there is none). */
static session_t *session_of_call(napi_env env, napi_callback_info info) { return clip_external_argument(env, info); }

/** reply(session, request, data: Uint8Array | null, errno): answers one read exactly once. */
static napi_value js_reply(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  double request;
  int32_t error = 0;
  CHECK(napi_get_value_double(env, argv[1], &request));
  napi_get_value_int32(env, argv[3], &error);
  fuse_req_t req = (fuse_req_t)(uintptr_t)request;
  napi_valuetype type;
  CHECK(napi_typeof(env, argv[2], &type));
  if (type == napi_object && error == 0) {
    void *data;
    size_t length;
    napi_typedarray_type array_type;
    napi_value buffer;
    size_t offset;
    CHECK(napi_get_typedarray_info(env, argv[2], &array_type, &length, &data, &buffer, &offset));
    fuse_reply_buf(req, data, length);
  } else {
    fuse_reply_err(req, error > 0 ? error : EIO);
  }
  return NULL;
}

/**
 * detach(session): lazily detaches the mount (umount2 MNT_DETACH) so the kernel ends the
 * session once nothing uses it; the loop then reports kind 1. Returns 0 or an errno.
 */
static napi_value js_detach(napi_env env, napi_callback_info info) {
  session_t *s = session_of_call(env, info);
  int result = 0;
  if (s && s->se) {
    fuse_session_exit(s->se);
    if (umount2(s->mountpoint, MNT_DETACH) != 0) result = errno;
  }
  napi_value value;
  napi_create_int32(env, result, &value);
  return value;
}

/** destroy(session): after the loop ended and every read was answered; frees everything. */
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  session_t *s = session_of_call(env, info);
  if (!s || !s->se) return NULL;
  if (s->thread_started && !s->joined) {
    pthread_join(s->thread, NULL);
    s->joined = 1;
  }
  fuse_session_unmount(s->se);
  fuse_session_destroy(s->se);
  s->se = NULL;
  free_tables(s);
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
  return NULL;
}

/** counters(session) → Float64Array [lookups, getattrs, readdirs, opens, reads, xattrs]. */
static napi_value js_counters(napi_env env, napi_callback_info info) {
  session_t *s = session_of_call(env, info);
  napi_value buffer, array;
  double *data;
  CHECK(napi_create_arraybuffer(env, COUNT_MAX * sizeof(double), (void **)&data, &buffer));
  for (int i = 0; i < COUNT_MAX; i++) data[i] = s ? (double)atomic_load(&s->counters[i]) : 0;
  CHECK(napi_create_typedarray(env, napi_float64_array, COUNT_MAX, buffer, 0, &array));
  return array;
}

/** resendError(session) → errno of the FUSE_NOTIFY_RESEND an attached session sent (0: worked). */
static napi_value js_resend_error(napi_env env, napi_callback_info info) {
  session_t *s = session_of_call(env, info);
  napi_value value;
  napi_create_int32(env, s ? s->resend_error : 0, &value);
  return value;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
      {"reply", NULL, js_reply, NULL, NULL, NULL, napi_default, NULL},
      {"detach", NULL, js_detach, NULL, NULL, NULL, napi_default, NULL},
      {"destroy", NULL, js_destroy, NULL, NULL, NULL, napi_default, NULL},
      {"counters", NULL, js_counters, NULL, NULL, NULL, napi_default, NULL},
      {"resendError", NULL, js_resend_error, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  clip_register_connection(env, exports);
  napi_value version;
  napi_create_int32(env, fuse_version(), &version);
  napi_set_named_property(env, exports, "libfuseVersion", version);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
