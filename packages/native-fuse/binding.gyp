{
  "targets": [
    {
      "target_name": "clip_fuse",
      "sources": ["native/clip_fuse.c", "native/connection.c"],
      "include_dirs": ["/usr/include/fuse3"],
      "libraries": ["-lfuse3", "-lpthread"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
