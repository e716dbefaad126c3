{
  "targets": [
    {
      "target_name": "tree_signature",
      "sources": ["native/tree_signature.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-pthread"],
      "ldflags": ["-pthread"]
    }
  ]
}
