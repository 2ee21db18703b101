{
  "targets": [
    {
      "target_name": "clip_zran",
      "sources": ["native/gzip_blocks.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
