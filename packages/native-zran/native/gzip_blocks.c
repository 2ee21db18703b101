// Streaming gzip inflater with Z_BLOCK stops, for the layer scanner (zran-style indexing).
// It only reports where deflate blocks and gzip members end; every policy decision (where to
// checkpoint, windows, pieces, hashes) stays in TypeScript so the portable path matches it.
// zlib comes from the node binary itself (it exports inflate*), so nothing is linked here.
#include <node_api.h>
#include <stdlib.h>
#include <zlib.h>

// Event kinds, written as 4 int32 each: kind, input index after the stop, output index, unused bits.
#define EV_BOUNDARY 1     // stopped at the end of a non-last deflate block
#define EV_MEMBER_END 2   // a gzip member (with its trailer) ended
#define EV_MEMBER_START 3 // another member follows: inflate was reset here
#define EV_STRIDE 4
#define ERR_STALL -100    // zlib made no progress with input and output room left

typedef struct {
  z_stream strm;
  int live;          // inflateInit2 succeeded and inflateEnd not called yet
  int member_ended;  // last inflate() returned Z_STREAM_END
} inflater;

#define CHECK(call)                                             \
  do {                                                          \
    if ((call) != napi_ok) {                                    \
      napi_throw_error(env, NULL, "native-zran: " #call);       \
      return NULL;                                              \
    }                                                           \
  } while (0)

static void release(inflater* s) {
  if (s->live) inflateEnd(&s->strm);
  s->live = 0;
}

static void finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  release((inflater*)data);
  free(data);
}

// Reads options.validate (default true) from an optional options object.
static int validate_option(napi_env env, size_t argc, napi_value* argv, int* validate) {
  *validate = 1;
  if (argc < 1) return 1;
  napi_valuetype type;
  if (napi_typeof(env, argv[0], &type) != napi_ok) return 0;
  if (type == napi_undefined) return 1;
  if (type != napi_object) return 0;
  bool has = false;
  if (napi_has_named_property(env, argv[0], "validate", &has) != napi_ok) return 0;
  if (!has) return 1;
  napi_value value;
  if (napi_get_named_property(env, argv[0], "validate", &value) != napi_ok || napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type == napi_undefined) return 1;
  bool flag;
  if (type != napi_boolean || napi_get_value_bool(env, value, &flag) != napi_ok) return 0;
  *validate = flag;
  return 1;
}

// new GzipBlockInflater({ validate?: boolean })
// validate false: zlib skips the gzip trailer's CRC-32 and length checks (inflateValidate),
// for callers that verify the compressed bytes' digest themselves. It survives the reset
// between members (inflateReset keeps the wrap flags).
static napi_value construct(napi_env env, napi_callback_info info) {
  napi_value self;
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  int validate;
  if (!validate_option(env, argc, argv, &validate)) {
    napi_throw_type_error(env, NULL, "native-zran: new GzipBlockInflater({ validate?: boolean })");
    return NULL;
  }
  inflater* s = calloc(1, sizeof *s);
  if (!s) {
    napi_throw_error(env, NULL, "native-zran: out of memory");
    return NULL;
  }
  // 15 + 16: gzip wrapper only, 32 KiB window (as the portable path).
  if (inflateInit2(&s->strm, 15 + 16) != Z_OK) {
    free(s);
    napi_throw_error(env, NULL, "native-zran: inflateInit2 failed");
    return NULL;
  }
  s->live = 1;
  if (!validate && inflateValidate(&s->strm, 0) != Z_OK) {
    release(s);
    free(s);
    napi_throw_error(env, NULL, "native-zran: inflateValidate failed");
    return NULL;
  }
  if (napi_wrap(env, self, s, finalize, NULL, NULL) != napi_ok) {
    release(s);
    free(s);
    napi_throw_error(env, NULL, "native-zran: napi_wrap failed");
    return NULL;
  }
  return self;
}

static inflater* unwrap(napi_env env, napi_value self) {
  void* data = NULL;
  if (napi_unwrap(env, self, &data) != napi_ok || !data) {
    napi_throw_error(env, NULL, "native-zran: not an inflater");
    return NULL;
  }
  inflater* s = data;
  if (!s->live) {
    napi_throw_error(env, NULL, "native-zran: inflater is closed");
    return NULL;
  }
  return s;
}

static int typed(napi_env env, napi_value value, napi_typedarray_type want, void** data, size_t* length) {
  bool is = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, value, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) != napi_ok) return 0;
  return type == want;
}

static int whole(napi_env env, napi_value value, size_t limit, size_t* out) {
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok) return 0;
  if (!(d >= 0 && d <= (double)limit) || d != (double)(size_t)d) return 0;
  *out = (size_t)d;
  return 1;
}

// run(input: Uint8Array, inStart, output: Uint8Array, outStart, events: Int32Array (>= 2 events), ends: Int32Array(2))
// Inflates until the input is used up, the output is full or `events` has no room for two
// more. Writes [input index, output index] reached into `ends`; returns the number of events,
// or a negative zlib error code (ERR_STALL when no progress was possible).
static napi_value run(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], self;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  inflater* s = unwrap(env, self);
  if (!s) return NULL;
  void *in, *out, *ev, *endsData;
  size_t inLen, outLen, evLen, endsLen, inStart, outStart;
  if (argc < 6 || !typed(env, argv[0], napi_uint8_array, &in, &inLen) || !whole(env, argv[1], inLen, &inStart) ||
      !typed(env, argv[2], napi_uint8_array, &out, &outLen) || !whole(env, argv[3], outLen, &outStart) ||
      !typed(env, argv[4], napi_int32_array, &ev, &evLen) || !typed(env, argv[5], napi_int32_array, &endsData, &endsLen) ||
      evLen < 2 * EV_STRIDE || endsLen < 2 || inLen > 0x7fffffff || outLen > 0x7fffffff) {
    napi_throw_type_error(env, NULL, "native-zran: run(Uint8Array, start, Uint8Array, start, Int32Array, Int32Array)");
    return NULL;
  }
  z_stream* strm = &s->strm;
  int32_t* events = ev;
  int32_t* ends = endsData;
  size_t capacity = evLen / EV_STRIDE, count = 0;
  int status = 0;
  strm->next_in = (Bytef*)in + inStart;
  strm->avail_in = (uInt)(inLen - inStart);
  strm->next_out = (Bytef*)out + outStart;
  strm->avail_out = (uInt)(outLen - outStart);
#define PUSH(kind, bits)                                                \
  do {                                                                  \
    int32_t* e = events + EV_STRIDE * count++;                          \
    e[0] = (kind);                                                      \
    e[1] = (int32_t)(strm->next_in - (Bytef*)in);                       \
    e[2] = (int32_t)(strm->next_out - (Bytef*)out);                     \
    e[3] = (bits);                                                      \
  } while (0)
  while (strm->avail_in > 0 && strm->avail_out > 0 && count + 2 <= capacity) {
    if (s->member_ended) {
      // Another gzip member follows: start over with an empty window.
      s->member_ended = 0;
      if (inflateReset(strm) != Z_OK) {
        status = Z_STREAM_ERROR;
        break;
      }
      PUSH(EV_MEMBER_START, 0);
    }
    uInt inBefore = strm->avail_in, outBefore = strm->avail_out;
    int ret = inflate(strm, Z_BLOCK);
    if (ret == Z_BUF_ERROR && strm->avail_in == inBefore && strm->avail_out == outBefore) {
      status = ERR_STALL;
      break;
    }
    if (ret == Z_NEED_DICT || (ret < 0 && ret != Z_BUF_ERROR)) {
      status = ret == Z_NEED_DICT ? Z_DATA_ERROR : ret;
      break;
    }
    if (ret == Z_STREAM_END) {
      s->member_ended = 1;
      PUSH(EV_MEMBER_END, 0);
    } else if ((strm->data_type & 128) && !(strm->data_type & 64)) {
      // data_type: 128 = stopped at a block boundary, 64 = last block, low 3 bits = unused bits.
      PUSH(EV_BOUNDARY, strm->data_type & 7);
    }
  }
#undef PUSH
  ends[0] = (int32_t)(strm->next_in - (Bytef*)in);
  ends[1] = (int32_t)(strm->next_out - (Bytef*)out);
  napi_value result;
  CHECK(napi_create_int32(env, status < 0 ? status : (int32_t)count, &result));
  return result;
}

// message(): zlib's description of the last error, or null.
static napi_value message(napi_env env, napi_callback_info info) {
  napi_value self, result;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  inflater* s = unwrap(env, self);
  if (!s) return NULL;
  if (s->strm.msg) CHECK(napi_create_string_utf8(env, s->strm.msg, NAPI_AUTO_LENGTH, &result));
  else CHECK(napi_get_null(env, &result));
  return result;
}

// memberEnded(): true when the input so far ends exactly at the end of a gzip member.
static napi_value member_ended(napi_env env, napi_callback_info info) {
  napi_value self, result;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  inflater* s = unwrap(env, self);
  if (!s) return NULL;
  CHECK(napi_get_boolean(env, s->member_ended != 0, &result));
  return result;
}

// close(): frees zlib's state now rather than at garbage collection. Idempotent.
static napi_value close_inflater(napi_env env, napi_callback_info info) {
  napi_value self;
  void* data = NULL;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  if (napi_unwrap(env, self, &data) == napi_ok && data) release((inflater*)data);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor methods[] = {
      {"run", NULL, run, NULL, NULL, NULL, napi_default, NULL},
      {"message", NULL, message, NULL, NULL, NULL, napi_default, NULL},
      {"memberEnded", NULL, member_ended, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_inflater, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls, version;
  CHECK(napi_define_class(env, "GzipBlockInflater", NAPI_AUTO_LENGTH, construct, NULL, sizeof methods / sizeof methods[0], methods, &cls));
  CHECK(napi_set_named_property(env, exports, "GzipBlockInflater", cls));
  CHECK(napi_create_string_utf8(env, zlibVersion(), NAPI_AUTO_LENGTH, &version));
  CHECK(napi_set_named_property(env, exports, "zlibVersion", version));
  return exports;
}
